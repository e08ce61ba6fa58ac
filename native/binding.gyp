{
  "variables": {
    "with_uring%": "<!(sh -c 'if [ -z \"$ISCSI_GATEWAY_NO_URING\" ] && [ -f /usr/include/liburing.h ] && { [ -e /usr/lib/x86_64-linux-gnu/liburing.so ] || ls /usr/lib/*/liburing.so /usr/lib/liburing.so /usr/local/lib/liburing.so >/dev/null 2>&1; }; then echo 1; else echo 0; fi')"
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
    }
  ]
}
