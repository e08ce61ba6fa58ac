{
  "variables": {
    "with_uring%": "<!(sh -c 'if [ -z \"$ISCSI_GATEWAY_NO_URING\" ] && [ -f /usr/include/liburing.h ] && { [ -e /usr/lib/x86_64-linux-gnu/liburing.so ] || ls /usr/lib/*/liburing.so /usr/lib/liburing.so /usr/local/lib/liburing.so >/dev/null 2>&1; }; then echo 1; else echo 0; fi')",
    "with_ceph%": "<!(sh -c 'if [ -z \"$ISCSI_GATEWAY_NO_CEPH\" ] && [ -f /usr/include/rbd/librbd.h ] && [ -f /usr/include/rados/librados.h ]; then echo 1; else echo 0; fi')"
  },
  "targets": [
    {
      "target_name": "iscsi_gateway_sys",
      "sources": ["src/sys.c", "src/uring.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
      "conditions": [
        ["with_uring==1", { "defines": ["HAVE_LIBURING"], "libraries": ["-luring"] }]
      ]
    },
    {
      "target_name": "iscsi_gateway_ceph",
      "conditions": [
        ["with_ceph==1", {
          "sources": ["<!@(sh -c 'ls src/ceph/*.cc')"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "cflags!": ["-fno-exceptions"],
          "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++14"],
          "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
          "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "_FILE_OFFSET_BITS=64"],
          "libraries": ["-lrados", "-lrbd"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
