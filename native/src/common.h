/* Helpers shared by the addon's source files (defined in sys.c). */
#ifndef ISCSI_GATEWAY_SYS_COMMON_H
#define ISCSI_GATEWAY_SYS_COMMON_H
#include <node_api.h>
#include <stdint.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, NULL, "iscsi_gateway_sys: N-API call failed: " #call);                 \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

/* Argument readers: 1 = ok, 0 = a JS exception is pending. */
int get_i64(napi_env env, napi_value v, int64_t *out, const char *what);
int get_int(napi_env env, napi_value v, int *out, const char *what);
/* An Error with code (e.g. "EIO"), errno (negative) and syscall, like node:fs's. */
napi_value make_error(napi_env env, int err, const char *syscall);
napi_value throw_errno(napi_env env, int err, const char *syscall);
/* uring.c: io_uring functions (stubs when built without liburing). */
napi_status uring_register(napi_env env, napi_value exports);
#endif
