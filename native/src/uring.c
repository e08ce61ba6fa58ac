/*
 * io_uring submission for the data path (built when liburing is present: HAVE_LIBURING).
 *
 *   uringInit(entries, completions: Int32Array, onComplete(n)) -> number  (CQ capacity; throws with errno)
 *   uringRead(id, fd, buffer, offset, length, position)        -> boolean (false: ring full, use another path)
 *   uringWrite(id, fd, buffer, offset, length, position)       -> boolean
 *   uringFsync(id, fd, datasync)                               -> boolean
 *   uringAvailable()                                           -> boolean (compiled in)
 *
 * One ring per JS environment (instance data). Calls only prepare submission entries; they are
 * submitted together, one io_uring_enter for everything queued since, by a uv_check handle
 * (after the poll phase that delivered the requests) and a uv_prepare handle (anything queued
 * later, before the loop sleeps). Completions wake the loop through the ring's file
 * descriptor (uv_poll); they are copied as (id, result) pairs into the caller's Int32Array
 * and handed over with one call per batch. The kernel completes page-cache reads inline and
 * hands blocking work (buffered writes on most file systems, fdatasync) to its own workers:
 * no thread-pool hop, no libuv mutex, no promise per request on this side.
 *
 * The caller keeps each Buffer referenced until its completion arrives (the kernel writes
 * into / reads from that memory until then).
 */
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

#ifdef HAVE_LIBURING
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
  struct io_uring ring;
  bool ready;
  napi_env env;
  napi_ref callback;
  napi_ref completions_ref;
  napi_async_context async;
  int32_t *completions;
  size_t max_batch; /* (id, result) pairs that fit in completions */
  unsigned queued;   /* prepared, not yet submitted */
  unsigned inflight; /* submitted or queued, not completed */
  unsigned capacity; /* CQ entries: never more in flight, so the CQ cannot overflow */
  uv_poll_t poll;
  uv_prepare_t prepare;
  uv_check_t check;
} ring_t;

static void submit_queued(ring_t *r) {
  while (r->queued > 0) {
    int n = io_uring_submit(&r->ring);
    if (n >= 0) {
      r->queued -= (unsigned)n > r->queued ? r->queued : (unsigned)n;
      if (n == 0) break;
    } else if (n == -EINTR) {
      continue;
    } else {
      break; /* EAGAIN/EBUSY: the kernel is short of resources; retried on the next loop turn */
    }
  }
}

static void on_prepare(uv_prepare_t *h) { submit_queued(h->data); }
static void on_check(uv_check_t *h) { submit_queued(h->data); }

static void on_poll(uv_poll_t *h, int status, int events) {
  ring_t *r = h->data;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv;
  napi_get_reference_value(env, r->callback, &cb);
  napi_get_global(env, &recv); /* make_callback wants an object receiver */
  for (int rounds = 0; rounds < 64; rounds++) {
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
      if (n == r->max_batch) break;
      r->completions[2 * n] = (int32_t)cqe->user_data;
      r->completions[2 * n + 1] = cqe->res;
      n++;
    }
    if (n == 0) break;
    io_uring_cq_advance(&r->ring, n);
    r->inflight -= n > r->inflight ? r->inflight : n;
    if (r->inflight == 0) uv_unref((uv_handle_t *)&r->poll);
    napi_value argv[1], result;
    napi_create_uint32(env, n, &argv[0]);
    /* make_callback: microtasks (the promises the callback settles) run before we go on */
    if (napi_make_callback(env, r->async, recv, cb, 1, argv, &result) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value e;
        napi_get_and_clear_last_exception(env, &e);
        napi_fatal_exception(env, e);
      }
      break;
    }
    if (n < r->max_batch) break;
  }
  napi_close_handle_scope(env, scope);
  submit_queued(r); /* requests issued by the completions */
}

static ring_t *get_ring(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  ring_t *r = data;
  return r && r->ready ? r : NULL;
}

static void free_ring(napi_env env, void *data, void *hint) {
  ring_t *r = data;
  /* The loop is going away with the environment; the handles die with it. */
  if (r->ready) io_uring_queue_exit(&r->ring);
  free(r);
}

static napi_value js_uring_init(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int entries;
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value ab;
  size_t ab_off;
  napi_valuetype cbtype = napi_undefined;
  if (argc < 3 || !get_int(env, argv[0], &entries, "entries")) return NULL;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, &ab, &ab_off) != napi_ok || type != napi_int32_array ||
      length < 2) {
    napi_throw_type_error(env, NULL, "completions must be an Int32Array of at least 2 elements");
    return NULL;
  }
  napi_typeof(env, argv[2], &cbtype);
  if (cbtype != napi_function) {
    napi_throw_type_error(env, NULL, "onComplete must be a function");
    return NULL;
  }
  if (get_ring(env)) {
    napi_throw_error(env, NULL, "io_uring is already initialised in this environment");
    return NULL;
  }
  ring_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, ENOMEM, "calloc");
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  /* COOP_TASKRUN: completions need no interrupt of this thread (5.19+); retried without. */
  p.flags = IORING_SETUP_COOP_TASKRUN;
  int err = io_uring_queue_init_params((unsigned)entries, &r->ring, &p);
  if (err == -EINVAL) {
    memset(&p, 0, sizeof p);
    err = io_uring_queue_init_params((unsigned)entries, &r->ring, &p);
  }
  if (err < 0) {
    free(r);
    return throw_errno(env, -err, "io_uring_setup");
  }
  if (!(p.features & IORING_FEAT_NODROP)) { /* < 5.5: a full CQ would drop completions */
    io_uring_queue_exit(&r->ring);
    free(r);
    return throw_errno(env, ENOSYS, "io_uring_setup (no IORING_FEAT_NODROP)");
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    io_uring_queue_exit(&r->ring);
    free(r);
    return throw_errno(env, EINVAL, "napi_get_uv_event_loop");
  }
  r->env = env;
  r->capacity = p.cq_entries;
  r->completions = data;
  r->max_batch = length / 2;
  napi_create_reference(env, argv[2], 1, &r->callback);
  napi_create_reference(env, argv[1], 1, &r->completions_ref);
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "io_uring", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &r->async);
  uv_poll_init(loop, &r->poll, r->ring.ring_fd);
  uv_prepare_init(loop, &r->prepare);
  uv_check_init(loop, &r->check);
  r->poll.data = r->prepare.data = r->check.data = r;
  uv_poll_start(&r->poll, UV_READABLE, on_poll);
  uv_prepare_start(&r->prepare, on_prepare);
  uv_check_start(&r->check, on_check);
  /* None keeps the process alive by itself; the poll handle does while requests are in flight. */
  uv_unref((uv_handle_t *)&r->poll);
  uv_unref((uv_handle_t *)&r->prepare);
  uv_unref((uv_handle_t *)&r->check);
  r->ready = true;
  if (napi_set_instance_data(env, r, free_ring, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "napi_set_instance_data failed");
    return NULL;
  }
  napi_value out;
  napi_create_uint32(env, r->capacity, &out);
  return out;
}

/* A free submission entry, or NULL when the ring is at capacity (the caller uses another path). */
static struct io_uring_sqe *take_sqe(ring_t *r) {
  if (r->inflight >= r->capacity) return NULL;
  struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  if (!sqe) {
    submit_queued(r);
    sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) return NULL;
  }
  r->queued++;
  if (r->inflight++ == 0) uv_ref((uv_handle_t *)&r->poll); /* outstanding I/O keeps the process alive */
  return sqe;
}

static napi_value bool_value(napi_env env, bool v) {
  napi_value out;
  napi_get_boolean(env, v, &out);
  return out;
}

/* (id, fd, buffer, offset, length, position): read or write. */
static napi_value rw(napi_env env, napi_callback_info info, bool write) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t id, off, len, pos;
  int fd;
  void *data;
  size_t size;
  if (argc < 6 || !get_i64(env, argv[0], &id, "id") || !get_int(env, argv[1], &fd, "fd") ||
      !get_i64(env, argv[3], &off, "offset") || !get_i64(env, argv[4], &len, "length") ||
      !get_i64(env, argv[5], &pos, "position"))
    return NULL;
  if (napi_get_buffer_info(env, argv[2], &data, &size) != napi_ok) {
    napi_throw_type_error(env, NULL, "buffer must be a Buffer");
    return NULL;
  }
  if ((uint64_t)(off + len) > size || len > 0x7fffffff || id > 0x7fffffff) {
    napi_throw_range_error(env, NULL, "range outside the buffer");
    return NULL;
  }
  ring_t *r = get_ring(env);
  struct io_uring_sqe *sqe = r ? take_sqe(r) : NULL;
  if (!sqe) return bool_value(env, false);
  if (write) io_uring_prep_write(sqe, fd, (char *)data + off, (unsigned)len, (uint64_t)pos);
  else io_uring_prep_read(sqe, fd, (char *)data + off, (unsigned)len, (uint64_t)pos);
  io_uring_sqe_set_data64(sqe, (uint64_t)id);
  return bool_value(env, true);
}

static napi_value js_uring_read(napi_env env, napi_callback_info info) { return rw(env, info, false); }
static napi_value js_uring_write(napi_env env, napi_callback_info info) { return rw(env, info, true); }

static napi_value js_uring_fsync(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t id;
  int fd;
  bool datasync = true;
  if (argc < 3 || !get_i64(env, argv[0], &id, "id") || !get_int(env, argv[1], &fd, "fd")) return NULL;
  napi_get_value_bool(env, argv[2], &datasync);
  if (id > 0x7fffffff) {
    napi_throw_range_error(env, NULL, "id");
    return NULL;
  }
  ring_t *r = get_ring(env);
  struct io_uring_sqe *sqe = r ? take_sqe(r) : NULL;
  if (!sqe) return bool_value(env, false);
  io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
  io_uring_sqe_set_data64(sqe, (uint64_t)id);
  return bool_value(env, true);
}

static napi_value js_uring_available(napi_env env, napi_callback_info info) { return bool_value(env, true); }

#else /* no liburing at build time: the JS side uses the thread pool */

static napi_value js_uring_available(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_get_boolean(env, false, &out);
  return out;
}

static napi_value js_uring_unavailable(napi_env env, napi_callback_info info) {
  napi_throw_error(env, "ENOSYS", "the native addon was built without liburing");
  return NULL;
}
#define js_uring_init js_uring_unavailable
#define js_uring_read js_uring_unavailable
#define js_uring_write js_uring_unavailable
#define js_uring_fsync js_uring_unavailable
#endif

napi_status uring_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"uringAvailable", NULL, js_uring_available, NULL, NULL, NULL, napi_enumerable, NULL},
      {"uringInit", NULL, js_uring_init, NULL, NULL, NULL, napi_enumerable, NULL},
      {"uringRead", NULL, js_uring_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"uringWrite", NULL, js_uring_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"uringFsync", NULL, js_uring_fsync, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
