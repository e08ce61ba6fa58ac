/*
 * iscsi_gateway_ceph: the project's own librados/librbd binding (node-addon-api, C++17).
 *
 * Shared by every source file of the addon (cluster.cc, rbd_image.cc, rbd_admin.cc and the RADOS
 * object operations in object.cc of branch rados-config):
 *   - ErrnoError / ThrowErrno: errors carrying the positive errno in `.errno`, its name in `.code`
 *   - Async: run a blocking librados/librbd call on libuv's pool, settle a Promise on the JS thread
 *   - Cluster (one rados_t) and IoCtx (one rados_ioctx_t) wrappers
 *
 * Threading rules (docs/ceph.md):
 *   - Nothing that talks to the cluster runs on the JS thread: connect, ioctx create, mon commands,
 *     rbd open/close/admin calls go through Async (libuv pool) or librbd's own aio completions.
 *   - librbd/librados completion callbacks run on Ceph's threads: they may only hand a result to
 *     a thread-safe function (NonBlockingCall); no N-API call there, nothing slow.
 *   - Lifetime: librados handles are shared_ptr-owned (RadosHandle, IoCtxHandle) by the JS
 *     wrappers, open images and async work alike; Cluster.shutdown() refuses with EBUSY while
 *     anything else still holds the cluster.
 */
#pragma once

#include <napi.h>
#include <rados/librados.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ceph {

/** A JS Error for a negative librados/librbd return value `r` of operation `op`. */
Napi::Error ErrnoError(Napi::Env env, int r, const std::string &op);
/** Throws ErrnoError (as a C++ exception, NAPI_CPP_EXCEPTIONS). */
[[noreturn]] void ThrowErrno(Napi::Env env, int r, const std::string &op);

/** Argument helpers: throw a TypeError naming the argument when it has the wrong type. */
std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *name);
uint64_t ArgU64(const Napi::CallbackInfo &info, size_t i, const char *name);
bool ArgBool(const Napi::CallbackInfo &info, size_t i, const char *name, bool dflt);
/** The Buffer at i (no copy); length checked against `min` bytes. */
Napi::Buffer<char> ArgBuffer(const Napi::CallbackInfo &info, size_t i, const char *name);

/**
 * Run `work` on libuv's thread pool. It returns >= 0 on success or a negative errno; on success
 * `done` builds the resolution value on the JS thread, otherwise the promise rejects with
 * ErrnoError(op). `keep` (may be empty) is held by a persistent reference until settled, and
 * `settled` (may be empty) runs on the JS thread either way (release counters there).
 */
Napi::Promise Async(Napi::Env env, const std::string &op, std::function<int()> work,
                    std::function<Napi::Value(Napi::Env)> done, Napi::Object keep = Napi::Object(),
                    std::function<void()> settled = nullptr);

/**
 * Per-environment constructors of the wrapped classes (instance data, so the addon also works in
 * worker threads): SetConstructor in a file's init function, Constructor to create instances.
 */
void SetConstructor(Napi::Env env, const std::string &name, Napi::Function ctor);
Napi::Function Constructor(Napi::Env env, const std::string &name);

/**
 * Shared ownership of the librados handles, so teardown order is always right whatever the
 * garbage collector does: an IoCtxHandle holds its RadosHandle, an open image holds its
 * RadosHandle, async work holds what it uses. The last owner destroys: ioctx before cluster.
 * Never drop the last reference on a librados/librbd callback thread (rados_shutdown there
 * would wait for itself).
 */
struct RadosHandle {
  rados_t cluster = nullptr;
  bool shut = false;  // set once rados_shutdown ran (explicit Cluster.shutdown)
  ~RadosHandle() {
    if (cluster != nullptr && !shut) rados_shutdown(cluster);
  }
};
using RadosRef = std::shared_ptr<RadosHandle>;

struct IoCtxHandle {
  rados_ioctx_t io = nullptr;
  RadosRef cluster;
  ~IoCtxHandle() {
    if (io != nullptr) rados_ioctx_destroy(io);
  }
};
using IoCtxRef = std::shared_ptr<IoCtxHandle>;

/** One rados_t: create + conf + connect on the pool, mon commands, blocklist, shutdown. */
class Cluster : public Napi::ObjectWrap<Cluster> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Cluster *From(Napi::Env env, Napi::Value v);  // throws TypeError if not a Cluster
  explicit Cluster(const Napi::CallbackInfo &info);

  /** The connected handle; throws ENOTCONN when not connected (or shut down). */
  RadosRef Ref(Napi::Env env) const;

 private:
  enum class State { New, Connecting, Connected, ShuttingDown, Shutdown, Failed };
  Napi::Value ConfSet(const Napi::CallbackInfo &info);
  Napi::Value ConfGet(const Napi::CallbackInfo &info);
  Napi::Value Connect(const Napi::CallbackInfo &info);
  Napi::Value Shutdown(const Napi::CallbackInfo &info);
  Napi::Value MonCommand(const Napi::CallbackInfo &info);
  Napi::Value BlocklistAdd(const Napi::CallbackInfo &info);
  Napi::Value InstanceId(const Napi::CallbackInfo &info);
  Napi::Value Addrs(const Napi::CallbackInfo &info);
  Napi::Value Fsid(const Napi::CallbackInfo &info);
  Napi::Value PoolList(const Napi::CallbackInfo &info);
  Napi::Value OpenIoCtx(const Napi::CallbackInfo &info);
  Napi::Value IsConnected(const Napi::CallbackInfo &info);

  RadosRef h_;
  State state_ = State::New;
  std::vector<std::pair<std::string, std::string>> pendingConf_;  // re-applied after the conf file
};

/** One rados_ioctx_t (pool + namespace). Created by Cluster.openIoCtx. */
class IoCtx : public Napi::ObjectWrap<IoCtx> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Object NewInstance(Napi::Env env, IoCtxRef h, const std::string &pool);
  static IoCtx *From(Napi::Env env, Napi::Value v);  // throws TypeError if not an IoCtx
  explicit IoCtx(const Napi::CallbackInfo &info);

  /**
   * The handle, shared: capture the IoCtxRef in async work so a close() meanwhile only drops
   * this wrapper's reference. Throws EBADF when closed.
   */
  IoCtxRef Ref(Napi::Env env) const;
  const std::string &Pool() const { return pool_; }

 private:
  Napi::Value Close(const Napi::CallbackInfo &info);
  Napi::Value SetNamespace(const Napi::CallbackInfo &info);
  Napi::Value GetNamespace(const Napi::CallbackInfo &info);
  Napi::Value PoolName(const Napi::CallbackInfo &info);
  Napi::Value PoolId(const Napi::CallbackInfo &info);

  IoCtxRef h_;
  std::string pool_;
  std::string namespace_;
};

/*
 * Per-file init functions, called by module.cc in this order. Each adds its classes/functions to
 * `exports`.
 */
void InitCluster(Napi::Env env, Napi::Object exports);  // cluster.cc: Cluster, IoCtx
void InitRbdImage(Napi::Env env, Napi::Object exports); // rbd_image.cc: RbdImage (aio data path)
void InitRbdAdmin(Napi::Env env, Napi::Object exports); // rbd_admin.cc: create/remove/list/clone/...

/*
 * ===== HOOK for branch rados-config: RADOS object operations =====
 * Add native/src/ceph/object.cc defining this function (read/write/xattr/omap/locks/
 * watch-notify over IoCtx::Handle, with Async for blocking calls and a TSFN for watch
 * callbacks). binding.gyp compiles every .cc file in src/ceph, and module.cc calls InitObject when it
 * is linked in (weak symbol), so neither file needs an edit.
 */
void InitObject(Napi::Env env, Napi::Object exports) __attribute__((weak));

}  // namespace ceph
