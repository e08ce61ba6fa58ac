/*
 * iscsi_gateway_sys: the few Linux file-system calls node:fs lacks.
 *
 *   fallocate(fd, mode, offset, length)            -> Promise<void>      (PUNCH_HOLE, ZERO_RANGE, ...)
 *   dataExtents(fd, offset, length)                -> Promise<number[]>  ([start, length, ...] of data, SEEK_DATA/SEEK_HOLE)
 *   allocExtents(fd, offset, length)               -> Promise<number[]>  ([start, length, ...] allocated, FIEMAP:
 *                                                                         written, unwritten (ZERO_RANGE) or delayed)
 *   dataBitmap(fd, unitSize, unitCount)            -> Promise<Buffer>    (1 byte per unit: 1 = holds data)
 *   copyRange(fdIn, offIn, fdOut, offOut, length, sparse) -> Promise<number> (copy_file_range; holes stay holes)
 *   flock(fd, op)                                  -> boolean            (non-blocking; false = held elsewhere)
 *   ofdLock(fd, type, start, length)               -> boolean            (non-blocking OFD byte-range lock)
 *   preadNowait(fd, buffer, offset, length, pos)   -> number             (page-cache read that never blocks; -1 = not cached)
 *   pwriteBatch(fds[], buffers[], positions[])     -> Promise<number[]>  (whole pwrites in order on one pool thread; errno each)
 *   pwriteSync(fd, buffer, offset, length, pos)    -> number             (whole pwrite on this thread; see io.ts for when)
 *   uring*                                         -> see uring.c        (io_uring submission, when built with liburing)
 *
 * Everything that can block on the disk runs as napi async work on libuv's thread pool, so the
 * event loop (the gateway's data path) never waits for it. The lock calls are non-blocking by
 * design and stay synchronous; callers retry. preadNowait is synchronous too: with RWF_NOWAIT
 * the kernel returns at once instead of waiting for the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"

enum op_kind { OP_FALLOCATE, OP_EXTENTS, OP_ALLOC, OP_BITMAP, OP_COPY };

typedef struct {
  enum op_kind kind;
  napi_async_work work;
  napi_deferred deferred;
  int fd, fd2, mode, flags;
  int64_t off, off2, len, unit, count;
  /* results */
  int err;
  const char *syscall;
  int64_t result;
  int64_t *extents; /* pairs */
  size_t n_extents, cap_extents;
  uint8_t *bitmap;
} job_t;

/* ---------- helpers that run on the thread pool ---------- */

static int push_extent(job_t *j, int64_t start, int64_t len) {
  if (j->n_extents > 0) {
    int64_t *last = &j->extents[2 * (j->n_extents - 1)];
    if (last[0] + last[1] == start) { /* merge adjacent */
      last[1] += len;
      return 0;
    }
  }
  if (j->n_extents == j->cap_extents) {
    size_t cap = j->cap_extents ? j->cap_extents * 2 : 64;
    int64_t *p = realloc(j->extents, cap * 2 * sizeof(int64_t));
    if (!p) return ENOMEM;
    j->extents = p;
    j->cap_extents = cap;
  }
  j->extents[2 * j->n_extents] = start;
  j->extents[2 * j->n_extents + 1] = len;
  j->n_extents++;
  return 0;
}

/*
 * Next data region at or after pos, bounded by end. Returns 0 and sets *d (start) and *h (end of
 * data); *d == end when there is no more data. File systems without SEEK_DATA report everything
 * as data (the conservative answer).
 */
static int next_data(int fd, int64_t pos, int64_t end, int64_t *d, int64_t *h) {
  off_t r = lseek(fd, pos, SEEK_DATA);
  if (r < 0) {
    if (errno == ENXIO) { /* no data after pos */
      *d = *h = end;
      return 0;
    }
    if (errno == EINVAL || errno == EOPNOTSUPP) {
      *d = pos;
      *h = end;
      return 0;
    }
    return errno;
  }
  if (r >= end) {
    *d = *h = end;
    return 0;
  }
  off_t e = lseek(fd, r, SEEK_HOLE);
  if (e < 0) {
    if (errno == ENXIO) e = end; /* raced with a truncate */
    else return errno;
  }
  *d = r;
  *h = e > end ? end : e;
  return 0;
}

static int write_zeros(int fd, int64_t off, int64_t len) {
  static const char zeros[65536];
  while (len > 0) {
    size_t n = len > (int64_t)sizeof(zeros) ? sizeof(zeros) : (size_t)len;
    ssize_t w = pwrite(fd, zeros, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    off += w;
    len -= w;
  }
  return 0;
}

static int punch(int fd, int64_t off, int64_t len) {
  if (len <= 0) return 0;
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0) return 0;
  if (errno == EOPNOTSUPP) return write_zeros(fd, off, len);
  return errno;
}

static int copy_plain(int in, int64_t off_in, int out, int64_t off_out, int64_t len, int64_t *copied) {
  size_t bufsize = 1 << 20;
  char *buf = malloc(bufsize);
  if (!buf) return ENOMEM;
  int err = 0;
  while (len > 0) {
    size_t want = len > (int64_t)bufsize ? bufsize : (size_t)len;
    ssize_t r = pread(in, buf, want, off_in);
    if (r < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (r == 0) { /* source shorter than the range: the rest reads as zeros */
      err = punch(out, off_out, len);
      break;
    }
    ssize_t done = 0;
    while (done < r) {
      ssize_t w = pwrite(out, buf + done, r - done, off_out + done);
      if (w < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      done += w;
    }
    if (err) break;
    off_in += r;
    off_out += r;
    len -= r;
    *copied += r;
  }
  free(buf);
  return err;
}

static int copy_data(int in, int64_t off_in, int out, int64_t off_out, int64_t len, int64_t *copied) {
  while (len > 0) {
    loff_t oi = off_in, oo = off_out;
    size_t want = len > (1LL << 30) ? (size_t)(1LL << 30) : (size_t)len;
    ssize_t n = copy_file_range(in, &oi, out, &oo, want, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
        return copy_plain(in, off_in, out, off_out, len, copied);
      return errno;
    }
    if (n == 0) return punch(out, off_out, len); /* EOF on the source */
    off_in += n;
    off_out += n;
    len -= n;
    *copied += n;
  }
  return 0;
}

static void execute(napi_env env, void *data) {
  job_t *j = data;
  switch (j->kind) {
  case OP_FALLOCATE:
    j->syscall = "fallocate";
    if (fallocate(j->fd, j->mode, j->off, j->len) != 0) j->err = errno;
    break;
  case OP_EXTENTS: {
    j->syscall = "lseek";
    int64_t pos = j->off, end = j->off + j->len;
    while (pos < end) {
      int64_t d = 0, h = 0;
      if ((j->err = next_data(j->fd, pos, end, &d, &h))) break;
      if (d >= end) break;
      if ((j->err = push_extent(j, d, h - d))) break;
      pos = h;
    }
    break;
  }
  case OP_ALLOC: {
    /* FIEMAP sees unwritten extents (ZERO_RANGE) that SEEK_DATA calls holes. */
    j->syscall = "ioctl(FS_IOC_FIEMAP)";
    const unsigned batch = 256;
    struct fiemap *fm = malloc(sizeof(struct fiemap) + batch * sizeof(struct fiemap_extent));
    if (!fm) {
      j->err = ENOMEM;
      break;
    }
    int64_t pos = j->off, end = j->off + j->len;
    while (pos < end) {
      memset(fm, 0, sizeof(struct fiemap));
      fm->fm_start = (uint64_t)pos;
      fm->fm_length = (uint64_t)(end - pos);
      fm->fm_extent_count = batch;
      if (ioctl(j->fd, FS_IOC_FIEMAP, fm) < 0) {
        if (errno == EOPNOTSUPP || errno == ENOTTY) { /* no FIEMAP: fall back to SEEK_DATA */
          j->syscall = "lseek";
          while (pos < end) {
            int64_t d = 0, h = 0;
            if ((j->err = next_data(j->fd, pos, end, &d, &h))) break;
            if (d >= end) break;
            if ((j->err = push_extent(j, d, h - d))) break;
            pos = h;
          }
        } else {
          j->err = errno;
        }
        break;
      }
      if (fm->fm_mapped_extents == 0) break;
      int last = 0;
      for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
        struct fiemap_extent *e = &fm->fm_extents[i];
        int64_t s = (int64_t)e->fe_logical, t = s + (int64_t)e->fe_length;
        if (s < pos) s = pos;
        if (t > end) t = end;
        if (t > s && (j->err = push_extent(j, s, t - s))) break;
        if (e->fe_flags & FIEMAP_EXTENT_LAST) last = 1;
        pos = (int64_t)(e->fe_logical + e->fe_length);
      }
      if (j->err || last) break;
    }
    free(fm);
    break;
  }
  case OP_BITMAP: {
    j->syscall = "lseek";
    j->bitmap = calloc(j->count > 0 ? (size_t)j->count : 1, 1);
    if (!j->bitmap) {
      j->err = ENOMEM;
      break;
    }
    int64_t end = j->unit * j->count, pos = 0;
    while (pos < end) {
      int64_t d = 0, h = 0;
      if ((j->err = next_data(j->fd, pos, end, &d, &h))) break;
      if (d >= end) break;
      int64_t first = d / j->unit, last = (h - 1) / j->unit;
      memset(j->bitmap + first, 1, (size_t)(last - first + 1));
      pos = h;
    }
    break;
  }
  case OP_COPY: {
    int64_t pos = j->off, end = j->off + j->len, delta = j->off2 - j->off;
    j->result = 0;
    while (pos < end) {
      int64_t d = 0, h = 0;
      if (j->flags & 1) {
        j->syscall = "lseek";
        if ((j->err = next_data(j->fd, pos, end, &d, &h))) break;
      } else {
        d = pos;
        h = end;
      }
      if (d > pos) {
        j->syscall = "fallocate";
        if ((j->err = punch(j->fd2, pos + delta, d - pos))) break;
      }
      if (d >= end) break;
      j->syscall = "copy_file_range";
      if ((j->err = copy_data(j->fd, d, j->fd2, d + delta, h - d, &j->result))) break;
      pos = h;
    }
    break;
  }
  }
}

/* ---------- completion on the JS thread ---------- */

napi_value make_error(napi_env env, int err, const char *syscall) {
  const char *name = strerrorname_np(err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s, %s", name ? name : "EIO", strerror(err), syscall);
  napi_value code, message, error, errnum, sc;
  napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  return error;
}

static void free_bitmap(napi_env env, void *data, void *hint) { free(data); }

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value result = NULL;
  if (status != napi_ok) j->err = EIO, j->syscall = "napi";
  if (j->err) {
    napi_reject_deferred(env, j->deferred, make_error(env, j->err, j->syscall));
  } else {
    switch (j->kind) {
    case OP_FALLOCATE:
      napi_get_undefined(env, &result);
      break;
    case OP_EXTENTS:
    case OP_ALLOC:
      napi_create_array_with_length(env, j->n_extents * 2, &result);
      for (size_t i = 0; i < j->n_extents * 2; i++) {
        napi_value v;
        napi_create_double(env, (double)j->extents[i], &v);
        napi_set_element(env, result, (uint32_t)i, v);
      }
      break;
    case OP_BITMAP:
      if (napi_create_external_buffer(env, (size_t)j->count, j->bitmap, free_bitmap, NULL, &result) == napi_ok)
        j->bitmap = NULL; /* owned by the Buffer now */
      else
        napi_create_buffer_copy(env, (size_t)j->count, j->bitmap, NULL, &result);
      break;
    case OP_COPY:
      napi_create_double(env, (double)j->result, &result);
      break;
    }
    napi_resolve_deferred(env, j->deferred, result);
  }
  napi_delete_async_work(env, j->work);
  free(j->extents);
  free(j->bitmap);
  free(j);
}

/* ---------- argument parsing ---------- */

int get_i64(napi_env env, napi_value v, int64_t *out, const char *what) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > 9007199254740992.0 ||
      (double)(int64_t)d != d) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a non-negative integer", what);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

int get_int(napi_env env, napi_value v, int *out, const char *what) {
  int64_t x;
  if (!get_i64(env, v, &x, what)) return 0;
  if (x > 0x7fffffff) {
    napi_throw_range_error(env, NULL, what);
    return 0;
  }
  *out = (int)x;
  return 1;
}

static napi_value queue(napi_env env, job_t *j, const char *name) {
  napi_value promise, resource_name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    free(j);
    napi_throw_error(env, NULL, "napi_create_promise failed");
    return NULL;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_async_work(env, NULL, resource_name, execute, complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    napi_reject_deferred(env, j->deferred, make_error(env, EAGAIN, "napi_queue_async_work"));
    free(j);
  }
  return promise;
}

static job_t *new_job(napi_env env, enum op_kind kind) {
  job_t *j = calloc(1, sizeof(job_t));
  if (!j) napi_throw_error(env, NULL, "out of memory");
  else j->kind = kind;
  return j;
}

static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "fallocate(fd, mode, offset, length)");
    return NULL;
  }
  job_t *j = new_job(env, OP_FALLOCATE);
  if (!j) return NULL;
  if (!get_int(env, argv[0], &j->fd, "fd") || !get_int(env, argv[1], &j->mode, "mode") ||
      !get_i64(env, argv[2], &j->off, "offset") || !get_i64(env, argv[3], &j->len, "length")) {
    free(j);
    return NULL;
  }
  return queue(env, j, "fallocate");
}

/* name(fd, offset, length): the shape of dataExtents and allocExtents. */
static napi_value fd_range_job(napi_env env, napi_callback_info info, enum op_kind kind, const char *name) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    char usage[64];
    snprintf(usage, sizeof usage, "%s(fd, offset, length)", name);
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  job_t *j = new_job(env, kind);
  if (!j) return NULL;
  if (!get_int(env, argv[0], &j->fd, "fd") || !get_i64(env, argv[1], &j->off, "offset") ||
      !get_i64(env, argv[2], &j->len, "length")) {
    free(j);
    return NULL;
  }
  return queue(env, j, name);
}

static napi_value js_data_extents(napi_env env, napi_callback_info info) {
  return fd_range_job(env, info, OP_EXTENTS, "dataExtents");
}

static napi_value js_alloc_extents(napi_env env, napi_callback_info info) {
  return fd_range_job(env, info, OP_ALLOC, "allocExtents");
}

static napi_value js_data_bitmap(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "dataBitmap(fd, unitSize, unitCount)");
    return NULL;
  }
  job_t *j = new_job(env, OP_BITMAP);
  if (!j) return NULL;
  if (!get_int(env, argv[0], &j->fd, "fd") || !get_i64(env, argv[1], &j->unit, "unitSize") ||
      !get_i64(env, argv[2], &j->count, "unitCount")) {
    free(j);
    return NULL;
  }
  if (j->unit <= 0) {
    free(j);
    napi_throw_range_error(env, NULL, "unitSize must be positive");
    return NULL;
  }
  return queue(env, j, "dataBitmap");
}

static napi_value js_copy_range(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "copyRange(fdIn, offIn, fdOut, offOut, length, sparse)");
    return NULL;
  }
  job_t *j = new_job(env, OP_COPY);
  if (!j) return NULL;
  bool sparse = false;
  if (argc > 5) napi_get_value_bool(env, argv[5], &sparse);
  j->flags = sparse ? 1 : 0;
  if (!get_int(env, argv[0], &j->fd, "fdIn") || !get_i64(env, argv[1], &j->off, "offIn") ||
      !get_int(env, argv[2], &j->fd2, "fdOut") || !get_i64(env, argv[3], &j->off2, "offOut") ||
      !get_i64(env, argv[4], &j->len, "length")) {
    free(j);
    return NULL;
  }
  return queue(env, j, "copyRange");
}

napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, make_error(env, err, syscall));
  return NULL;
}

/* A non-blocking lock attempt: true when taken, false when someone else holds it, else throw. */
static napi_value lock_result(napi_env env, int err, const char *syscall) {
  if (err != 0 && err != EWOULDBLOCK && err != EAGAIN && err != EACCES) return throw_errno(env, err, syscall);
  napi_value out;
  napi_get_boolean(env, err == 0, &out);
  return out;
}

static napi_value js_flock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd, op;
  if (argc < 2 || !get_int(env, argv[0], &fd, "fd") || !get_int(env, argv[1], &op, "op")) return NULL;
  if (op != LOCK_SH && op != LOCK_EX && op != LOCK_UN) {
    napi_throw_range_error(env, NULL, "flock op must be LOCK_SH, LOCK_EX or LOCK_UN");
    return NULL;
  }
  int r;
  do r = flock(fd, op | LOCK_NB);
  while (r < 0 && errno == EINTR);
  return lock_result(env, r == 0 ? 0 : errno, "flock");
}

static napi_value js_ofd_lock(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd, type;
  int64_t start, len;
  if (argc < 4 || !get_int(env, argv[0], &fd, "fd") || !get_int(env, argv[1], &type, "type") ||
      !get_i64(env, argv[2], &start, "start") || !get_i64(env, argv[3], &len, "length"))
    return NULL;
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type == 0 ? F_RDLCK : type == 1 ? F_WRLCK : F_UNLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  int r;
  do r = fcntl(fd, F_OFD_SETLK, &fl);
  while (r < 0 && errno == EINTR);
  return lock_result(env, r == 0 ? 0 : errno, "fcntl(F_OFD_SETLK)");
}

/*
 * preadNowait(fd, buffer, offset, length, position) -> bytes read, or -1 when the data is
 * not all in the page cache (RWF_NOWAIT: the kernel refuses to block). Synchronous on
 * purpose: a page-cache hit costs a memcpy, far less than a thread-pool round trip; a miss
 * falls back to the asynchronous read.
 */
/*
 * The (fd, buffer, offset, length, position) arguments of the synchronous positional calls:
 * `*at` is buffer + offset, checked to lie inside the buffer. Throws and returns false otherwise.
 */
static bool get_positional(napi_env env, napi_callback_info info, int *fd, char **at, int64_t *len, int64_t *pos) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  int64_t off;
  void *data;
  size_t size;
  if (argc < 5 || !get_int(env, argv[0], fd, "fd") || !get_i64(env, argv[2], &off, "offset") ||
      !get_i64(env, argv[3], len, "length") || !get_i64(env, argv[4], pos, "position"))
    return false;
  if (napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok) {
    napi_throw_type_error(env, NULL, "buffer must be a Buffer");
    return false;
  }
  if (off < 0 || *len < 0 || *pos < 0 || (uint64_t)(off + *len) > size) {
    napi_throw_range_error(env, NULL, "range outside the buffer");
    return false;
  }
  *at = (char *)data + off;
  return true;
}

static napi_value js_pread_nowait(napi_env env, napi_callback_info info) {
  int fd;
  char *at;
  int64_t len, pos;
  if (!get_positional(env, info, &fd, &at, &len, &pos)) return NULL;
  struct iovec iov = {at, (size_t)len};
  ssize_t r;
  do r = preadv2(fd, &iov, 1, pos, RWF_NOWAIT);
  while (r < 0 && errno == EINTR);
  napi_value out;
  if (r < 0) {
    if (errno != EAGAIN && errno != EOPNOTSUPP) return throw_errno(env, errno, "preadv2");
    r = -1;
  }
  napi_create_int64(env, r, &out);
  return out;
}

/*
 * pwriteSync(fd, buffer, offset, length, position) -> bytes written (all of them), or throws.
 * Synchronous: for a write into the page cache (no allocation, no read-modify-write, no
 * dirty throttling) a pwrite costs about a memcpy, several times less than any hand-off to
 * another thread. The caller decides when a write may block the event loop (src/sys/io.ts).
 */
static napi_value js_pwrite_sync(napi_env env, napi_callback_info info) {
  int fd;
  char *at;
  int64_t len, pos;
  if (!get_positional(env, info, &fd, &at, &len, &pos)) return NULL;
  int64_t done = 0;
  while (done < len) {
    ssize_t r = pwrite(fd, at + done, (size_t)(len - done), pos + done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return throw_errno(env, errno, "pwrite");
    }
    done += r;
  }
  napi_value out;
  napi_create_int64(env, done, &out);
  return out;
}

/*
 * pwriteBatch: many positional writes in one thread-pool job. Writes issued during one turn
 * of the event loop then cost one hand-off to the pool instead of one each; they run in the
 * order given, each written completely (short writes and EINTR retried).
 */
typedef struct {
  int fd;
  const char *data;
  size_t len;
  int64_t pos;
  int err;
} wr_item_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep; /* the array of Buffers stays alive while the pool thread writes them */
  uint32_t n;
  wr_item_t *items;
} wr_batch_t;

static void wr_batch_execute(napi_env env, void *data) {
  wr_batch_t *b = data;
  for (uint32_t i = 0; i < b->n; i++) {
    wr_item_t *w = &b->items[i];
    size_t done = 0;
    while (done < w->len) {
      ssize_t r = pwrite(w->fd, w->data + done, w->len - done, w->pos + (int64_t)done);
      if (r < 0) {
        if (errno == EINTR) continue;
        w->err = errno;
        break;
      }
      done += (size_t)r;
    }
  }
}

static void wr_batch_complete(napi_env env, napi_status status, void *data) {
  wr_batch_t *b = data;
  napi_value arr;
  napi_create_array_with_length(env, b->n, &arr);
  for (uint32_t i = 0; i < b->n; i++) {
    napi_value v;
    napi_create_int32(env, status == napi_ok ? b->items[i].err : EIO, &v);
    napi_set_element(env, arr, i, v);
  }
  napi_resolve_deferred(env, b->deferred, arr);
  napi_delete_reference(env, b->keep);
  napi_delete_async_work(env, b->work);
  free(b->items);
  free(b);
}

static napi_value js_pwrite_batch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t n = 0, nf = 0, np = 0;
  if (argc < 3 || napi_get_array_length(env, argv[0], &nf) != napi_ok || napi_get_array_length(env, argv[1], &n) != napi_ok ||
      napi_get_array_length(env, argv[2], &np) != napi_ok || nf != n || np != n) {
    napi_throw_type_error(env, NULL, "pwriteBatch(fds[], buffers[], positions[]): three arrays of the same length");
    return NULL;
  }
  wr_batch_t *b = calloc(1, sizeof *b);
  wr_item_t *items = calloc(n ? n : 1, sizeof *items);
  if (!b || !items) {
    free(b);
    free(items);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  b->n = n;
  b->items = items;
  for (uint32_t i = 0; i < n; i++) {
    napi_value fd, buf, pos;
    void *data;
    size_t len;
    int64_t p;
    if (napi_get_element(env, argv[0], i, &fd) != napi_ok || napi_get_element(env, argv[1], i, &buf) != napi_ok ||
        napi_get_element(env, argv[2], i, &pos) != napi_ok || !get_int(env, fd, &items[i].fd, "fd") ||
        !get_i64(env, pos, &p, "position")) {
      free(items);
      free(b);
      return NULL;
    }
    if (napi_get_buffer_info(env, buf, &data, &len) != napi_ok) {
      free(items);
      free(b);
      napi_throw_type_error(env, NULL, "buffers must be Buffers");
      return NULL;
    }
    items[i].data = data;
    items[i].len = len;
    items[i].pos = p;
  }
  napi_value promise, name;
  napi_create_reference(env, argv[1], 1, &b->keep);
  napi_create_promise(env, &b->deferred, &promise);
  napi_create_string_utf8(env, "pwriteBatch", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, wr_batch_execute, wr_batch_complete, b, &b->work) != napi_ok ||
      napi_queue_async_work(env, b->work) != napi_ok) {
    napi_reject_deferred(env, b->deferred, make_error(env, EAGAIN, "napi_queue_async_work"));
    napi_delete_reference(env, b->keep);
    free(items);
    free(b);
  }
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"fallocate", NULL, js_fallocate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dataExtents", NULL, js_data_extents, NULL, NULL, NULL, napi_enumerable, NULL},
      {"allocExtents", NULL, js_alloc_extents, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dataBitmap", NULL, js_data_bitmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copyRange", NULL, js_copy_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ofdLock", NULL, js_ofd_lock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"preadNowait", NULL, js_pread_nowait, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pwriteBatch", NULL, js_pwrite_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pwriteSync", NULL, js_pwrite_sync, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  CHECK(uring_register(env, exports));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
