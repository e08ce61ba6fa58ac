/*
 * RbdImage: one open rbd_image_t.
 *
 * Data path (read/write/writeSame/discard/writeZeroes/compareAndWrite/flush): rbd_aio_* submitted
 * on the JS thread straight from/into the caller's Buffer (pinned by a reference until the
 * completion, never copied here). librbd calls OnComplete on its own thread: it reads the return
 * value, releases the completion and queues the op on the image's ONE thread-safe function
 * (NonBlockingCall, unbounded queue: a blocking call could deadlock against rbd_close). CallJs
 * then settles the promise on the JS thread. No polling, no per-op allocation besides the Op.
 *
 * Everything else (open, close, stat, resize, snapshots, locks, metadata, diff) is a synchronous
 * librbd call run on libuv's pool (Async). The image counts every operation in flight: the TSFN
 * and the wrapper are Ref'd while the count is > 0 (JS thread only), so an idle open image does
 * not keep the process alive and a busy one is not collected; close waits until it is 0.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <rbd/librbd.h>
#include <vector>

#include "ceph.h"

namespace ceph {

namespace {

class RbdImage;

struct Op {
  enum Kind { Read, Write, CompareAndWrite, Other } kind = Other;
  RbdImage *img = nullptr;
  rbd_completion_t c = nullptr;
  Napi::Promise::Deferred deferred;
  Napi::Reference<Napi::Buffer<char>> pin1, pin2;  // the caller's Buffers, until completion
  ssize_t r = 0;
  uint64_t offset = 0;
  uint64_t mismatch = 0;  // compare_and_write: written by librbd before the completion
  std::string what;
  explicit Op(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

struct WatchCtx {
  Napi::ThreadSafeFunction tsfn;
  uint64_t handle = 0;
};

void CallJs(Napi::Env env, Napi::Function, RbdImage *img, Op *op);
using Tsfn = Napi::TypedThreadSafeFunction<RbdImage, Op, CallJs>;

Napi::Promise Rejected(Napi::Env env, int r, const std::string &what) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(ErrnoError(env, r, what).Value());
  return d.Promise();
}

class RbdImage : public Napi::ObjectWrap<RbdImage> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit RbdImage(const Napi::CallbackInfo &info);
  ~RbdImage() override;

  static Napi::Value Open(const Napi::CallbackInfo &info);
  void Complete(Napi::Env env, Op *op);
  Tsfn tsfn;

 private:
  // data path
  Napi::Value Read(const Napi::CallbackInfo &info);
  Napi::Value Write(const Napi::CallbackInfo &info);
  Napi::Value WriteSame(const Napi::CallbackInfo &info);
  Napi::Value Discard(const Napi::CallbackInfo &info);
  Napi::Value WriteZeroes(const Napi::CallbackInfo &info);
  Napi::Value CompareAndWrite(const Napi::CallbackInfo &info);
  Napi::Value Flush(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  // state
  Napi::Value Size(const Napi::CallbackInfo &info);
  Napi::Value InFlight(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Resize(const Napi::CallbackInfo &info);
  Napi::Value UpdateFeatures(const Napi::CallbackInfo &info);
  Napi::Value DiffIterate(const Napi::CallbackInfo &info);
  // snapshots and clones
  Napi::Value SnapCreate(const Napi::CallbackInfo &info);
  Napi::Value SnapRemove(const Napi::CallbackInfo &info);
  Napi::Value SnapRollback(const Napi::CallbackInfo &info);
  Napi::Value SnapProtect(const Napi::CallbackInfo &info);
  Napi::Value SnapUnprotect(const Napi::CallbackInfo &info);
  Napi::Value SnapIsProtected(const Napi::CallbackInfo &info);
  Napi::Value SnapList(const Napi::CallbackInfo &info);
  Napi::Value Flatten(const Napi::CallbackInfo &info);
  Napi::Value ListChildren(const Napi::CallbackInfo &info);
  // metadata
  Napi::Value MetadataGet(const Napi::CallbackInfo &info);
  Napi::Value MetadataSet(const Napi::CallbackInfo &info);
  Napi::Value MetadataRemove(const Napi::CallbackInfo &info);
  Napi::Value MetadataList(const Napi::CallbackInfo &info);
  // locks and watches
  Napi::Value LockAcquire(const Napi::CallbackInfo &info);
  Napi::Value LockRelease(const Napi::CallbackInfo &info);
  Napi::Value LockGetOwners(const Napi::CallbackInfo &info);
  Napi::Value LockBreak(const Napi::CallbackInfo &info);
  Napi::Value IsLockOwner(const Napi::CallbackInfo &info);
  Napi::Value Watchers(const Napi::CallbackInfo &info);
  Napi::Value UpdateWatch(const Napi::CallbackInfo &info);
  Napi::Value UpdateUnwatch(const Napi::CallbackInfo &info);

  /** Count an operation in; the first one Refs the TSFN and the wrapper. JS thread only. */
  void Begin(Napi::Env env);
  /** Count it out; the last one Unrefs, or starts a pending close. JS thread only. */
  void End(Napi::Env env);
  /** -EBADF when closed or closing (callers turn it into a rejection). */
  int Usable() const { return (image_ == nullptr || closing_) ? -EBADF : 0; }
  /** Submit one aio op; `submit` gets the completion and returns librbd's submit result. */
  Napi::Value Submit(Napi::Env env, Op *op, const std::function<int(rbd_completion_t)> &submit);
  /** A synchronous librbd call on the pool, counted in flight. */
  Napi::Value Call(Napi::Env env, const std::string &what, std::function<int(rbd_image_t)> work,
                   std::function<Napi::Value(Napi::Env)> done = nullptr);
  /** Close on the pool once nothing is in flight; `refsHeld`: the TSFN and wrapper are still Ref'd. */
  void StartClose(Napi::Env env, bool refsHeld);

  rbd_image_t image_ = nullptr;
  IoCtxRef io_;  // keeps the pool context (and so the cluster) alive while open
  std::string name_;
  bool readOnly_ = false;
  bool closing_ = false;
  int inflight_ = 0;
  std::map<uint64_t, WatchCtx *> watches_;
  std::vector<Napi::Promise::Deferred> closeWaiters_;
};

void CallJs(Napi::Env env, Napi::Function, RbdImage *img, Op *op) {
  if (env == nullptr) {  // the environment is going away: nothing to settle
    delete op;
    return;
  }
  img->Complete(env, op);
}

// librbd's thread: nothing but hand-off (no N-API, nothing slow).
void OnComplete(rbd_completion_t c, void *arg) {
  Op *op = static_cast<Op *>(arg);
  op->r = rbd_aio_get_return_value(c);
  rbd_aio_release(c);
  op->img->tsfn.NonBlockingCall(op);
}

void OnUpdate(void *arg) {
  static_cast<WatchCtx *>(arg)->tsfn.NonBlockingCall();
}

void RbdImage::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(env, "RbdImage",
                                 {
                                     InstanceMethod<&RbdImage::Read>("read"),
                                     InstanceMethod<&RbdImage::Write>("write"),
                                     InstanceMethod<&RbdImage::WriteSame>("writeSame"),
                                     InstanceMethod<&RbdImage::Discard>("discard"),
                                     InstanceMethod<&RbdImage::WriteZeroes>("writeZeroes"),
                                     InstanceMethod<&RbdImage::CompareAndWrite>("compareAndWrite"),
                                     InstanceMethod<&RbdImage::Flush>("flush"),
                                     InstanceMethod<&RbdImage::Close>("close"),
                                     InstanceMethod<&RbdImage::Size>("size"),
                                     InstanceMethod<&RbdImage::InFlight>("inFlight"),
                                     InstanceMethod<&RbdImage::Info>("info"),
                                     InstanceMethod<&RbdImage::Resize>("resize"),
                                     InstanceMethod<&RbdImage::UpdateFeatures>("updateFeatures"),
                                     InstanceMethod<&RbdImage::DiffIterate>("diffIterate"),
                                     InstanceMethod<&RbdImage::SnapCreate>("snapCreate"),
                                     InstanceMethod<&RbdImage::SnapRemove>("snapRemove"),
                                     InstanceMethod<&RbdImage::SnapRollback>("snapRollback"),
                                     InstanceMethod<&RbdImage::SnapProtect>("snapProtect"),
                                     InstanceMethod<&RbdImage::SnapUnprotect>("snapUnprotect"),
                                     InstanceMethod<&RbdImage::SnapIsProtected>("snapIsProtected"),
                                     InstanceMethod<&RbdImage::SnapList>("snapList"),
                                     InstanceMethod<&RbdImage::Flatten>("flatten"),
                                     InstanceMethod<&RbdImage::ListChildren>("listChildren"),
                                     InstanceMethod<&RbdImage::MetadataGet>("metadataGet"),
                                     InstanceMethod<&RbdImage::MetadataSet>("metadataSet"),
                                     InstanceMethod<&RbdImage::MetadataRemove>("metadataRemove"),
                                     InstanceMethod<&RbdImage::MetadataList>("metadataList"),
                                     InstanceMethod<&RbdImage::LockAcquire>("lockAcquire"),
                                     InstanceMethod<&RbdImage::LockRelease>("lockRelease"),
                                     InstanceMethod<&RbdImage::LockGetOwners>("lockGetOwners"),
                                     InstanceMethod<&RbdImage::LockBreak>("lockBreak"),
                                     InstanceMethod<&RbdImage::IsLockOwner>("isLockOwner"),
                                     InstanceMethod<&RbdImage::Watchers>("watchers"),
                                     InstanceMethod<&RbdImage::UpdateWatch>("updateWatch"),
                                     InstanceMethod<&RbdImage::UpdateUnwatch>("updateUnwatch"),
                                 });
  SetConstructor(env, "RbdImage", f);
  exports.Set("rbdOpen", Napi::Function::New(env, &RbdImage::Open, "rbdOpen"));
}

struct OpenArgs {
  IoCtxRef io;
  rbd_image_t image = nullptr;
  std::string name;
  std::string snap;
  bool haveSnap = false;
  bool readOnly = false;
};

// rbdOpen(ioctx, name, { snapshot?, readOnly? }) -> Promise<RbdImage>
Napi::Value RbdImage::Open(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  IoCtx *io = IoCtx::From(env, info[0]);
  auto a = std::make_shared<OpenArgs>();
  a->name = ArgString(info, 1, "name");
  if (info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    Napi::Value s = o.Get("snapshot");
    if (s.IsString()) {
      a->snap = s.As<Napi::String>().Utf8Value();
      a->haveSnap = true;
    } else if (!s.IsUndefined() && !s.IsNull()) {
      throw Napi::TypeError::New(env, "snapshot must be a string");
    }
    Napi::Value ro = o.Get("readOnly");
    a->readOnly = ro.IsBoolean() && ro.As<Napi::Boolean>().Value();
  }
  if (a->haveSnap) a->readOnly = true;  // a snapshot is read-only
  a->io = io->Ref(env);
  return Async(
      env, "rbd_open " + io->Pool() + "/" + a->name + (a->haveSnap ? "@" + a->snap : ""),
      [a]() -> int {
        const char *snap = a->haveSnap ? a->snap.c_str() : nullptr;
        // Read-only opens take no exclusive lock and register no header watch for writes.
        return a->readOnly ? rbd_open_read_only(a->io->io, a->name.c_str(), &a->image, snap)
                           : rbd_open(a->io->io, a->name.c_str(), &a->image, snap);
      },
      [a](Napi::Env env) -> Napi::Value {
        auto *box = new std::shared_ptr<OpenArgs>(a);
        Napi::Object o;
        try {
          o = Constructor(env, "RbdImage").New({Napi::External<std::shared_ptr<OpenArgs>>::New(env, box)});
        } catch (...) {
          delete box;
          if (a->image != nullptr) rbd_close(a->image);  // constructor failed (out of memory): do not leak
          throw;
        }
        delete box;
        return o;
      },
      info[0].As<Napi::Object>());
}

RbdImage::RbdImage(const Napi::CallbackInfo &info) : Napi::ObjectWrap<RbdImage>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(env, "RbdImage is created by rbdOpen()");
  std::shared_ptr<OpenArgs> a = *info[0].As<Napi::External<std::shared_ptr<OpenArgs>>>().Data();
  name_ = a->name + (a->haveSnap ? "@" + a->snap : "");
  readOnly_ = a->readOnly;
  io_ = a->io;
  tsfn = Tsfn::New(env, "rbd_aio", 0, 1, this);
  tsfn.Unref(env);  // idle: do not keep the process alive
  image_ = a->image;
  a->image = nullptr;
  Value().Set("name", Napi::String::New(env, name_));  // plain data properties for the TS interface
  Value().Set("readOnly", Napi::Boolean::New(env, readOnly_));
}

RbdImage::~RbdImage() {
  // Collected while still open (the owner never called close): close synchronously here, the
  // only place left. Nothing can be in flight (in-flight ops Ref the wrapper).
  if (image_ != nullptr) {
    for (auto &w : watches_) rbd_update_unwatch(image_, w.second->handle);
    rbd_close(image_);
    image_ = nullptr;
  }
  for (auto &w : watches_) {
    w.second->tsfn.Release();
    delete w.second;
  }
  watches_.clear();
  if (!closing_) tsfn.Release();
}

void RbdImage::Begin(Napi::Env env) {
  if (inflight_++ == 0) {
    tsfn.Ref(env);
    Ref();
  }
}

void RbdImage::End(Napi::Env env) {
  if (--inflight_ > 0) return;
  if (closing_ && image_ != nullptr) {
    StartClose(env, true);  // keeps the Refs of the ops that just ended
    return;
  }
  tsfn.Unref(env);
  Unref();
}

void RbdImage::Complete(Napi::Env env, Op *op) {
  Napi::HandleScope scope(env);
  if (op->r < 0) {
    if (op->kind == Op::CompareAndWrite && op->r == -EILSEQ) {
      // Pacific's librbd reports (start of the object in the image + offset in the compare
      // buffer), not the image offset its header promises. Within the one sector it accepts,
      // the relative offset is the value modulo 512, unless the value is a true image offset.
      uint64_t len = op->pin1.Value().Length();
      uint64_t rel = (op->mismatch >= op->offset && op->mismatch < op->offset + len) ? op->mismatch - op->offset : op->mismatch % 512;
      op->deferred.Resolve(Napi::Number::New(env, static_cast<double>(rel)));
    } else {
      op->deferred.Reject(ErrnoError(env, static_cast<int>(op->r), op->what + " " + name_).Value());
    }
  } else if (op->kind == Op::Read) {
    op->deferred.Resolve(Napi::Number::New(env, static_cast<double>(op->r)));
  } else if (op->kind == Op::CompareAndWrite) {
    op->deferred.Resolve(Napi::Number::New(env, -1));
  } else {
    op->deferred.Resolve(env.Undefined());
  }
  op->pin1.Reset();
  op->pin2.Reset();
  delete op;
  End(env);
}

Napi::Value RbdImage::Submit(Napi::Env env, Op *op, const std::function<int(rbd_completion_t)> &submit) {
  Napi::Promise p = op->deferred.Promise();
  op->img = this;
  int r = rbd_aio_create_completion(op, OnComplete, &op->c);
  if (r >= 0) {
    Begin(env);
    r = submit(op->c);
    if (r < 0) {
      rbd_aio_release(op->c);
      op->r = r;
      Complete(env, op);  // rejects and ends
    }
    return p;
  }
  op->r = r;
  op->deferred.Reject(ErrnoError(env, r, "rbd_aio_create_completion").Value());
  delete op;
  return p;
}

static void CheckRange(Napi::Env env, uint64_t len, size_t have, const char *what) {
  if (len > have) throw Napi::RangeError::New(env, std::string(what) + " is shorter than the length");
}

Napi::Value RbdImage::Read(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t off = ArgU64(info, 0, "offset");
  uint64_t len = ArgU64(info, 1, "length");
  Napi::Buffer<char> into = ArgBuffer(info, 2, "into");
  CheckRange(env, len, into.Length(), "into");
  if (int r = Usable()) return Rejected(env, r, "rbd_aio_read " + name_);
  Op *op = new Op(env);
  op->kind = Op::Read;
  op->what = "rbd_aio_read";
  op->pin1 = Napi::Persistent(into);
  char *buf = into.Data();
  rbd_image_t img = image_;
  return Submit(env, op, [=](rbd_completion_t c) { return rbd_aio_read2(img, off, len, buf, c, 0); });
}

Napi::Value RbdImage::Write(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t off = ArgU64(info, 0, "offset");
  Napi::Buffer<char> data = ArgBuffer(info, 1, "data");
  bool fua = ArgBool(info, 2, "fua", false);
  if (int r = Usable()) return Rejected(env, r, "rbd_aio_write " + name_);
  if (readOnly_) return Rejected(env, -EROFS, "rbd_aio_write " + name_);
  Op *op = new Op(env);
  op->kind = Op::Write;
  op->what = "rbd_aio_write";
  op->pin1 = Napi::Persistent(data);
  const char *buf = data.Data();
  size_t len = data.Length();
  rbd_image_t img = image_;
  int flags = fua ? LIBRADOS_OP_FLAG_FADVISE_FUA : 0;
  return Submit(env, op, [=](rbd_completion_t c) { return rbd_aio_write2(img, off, len, buf, c, flags); });
}

Napi::Value RbdImage::WriteSame(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t off = ArgU64(info, 0, "offset");
  uint64_t len = ArgU64(info, 1, "length");
  Napi::Buffer<char> pattern = ArgBuffer(info, 2, "pattern");
  bool fua = ArgBool(info, 3, "fua", false);
  if (pattern.Length() == 0 || len % pattern.Length() != 0)
    throw Napi::RangeError::New(env, "length must be a non-zero multiple of the pattern length");
  if (int r = Usable()) return Rejected(env, r, "rbd_aio_writesame " + name_);
  if (readOnly_) return Rejected(env, -EROFS, "rbd_aio_writesame " + name_);
  Op *op = new Op(env);
  op->what = "rbd_aio_writesame";
  op->pin1 = Napi::Persistent(pattern);
  const char *buf = pattern.Data();
  size_t plen = pattern.Length();
  rbd_image_t img = image_;
  int flags = fua ? LIBRADOS_OP_FLAG_FADVISE_FUA : 0;
  return Submit(env, op, [=](rbd_completion_t c) { return rbd_aio_writesame(img, off, len, buf, plen, c, flags); });
}

Napi::Value RbdImage::Discard(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t off = ArgU64(info, 0, "offset");
  uint64_t len = ArgU64(info, 1, "length");
  if (int r = Usable()) return Rejected(env, r, "rbd_aio_discard " + name_);
  if (readOnly_) return Rejected(env, -EROFS, "rbd_aio_discard " + name_);
  Op *op = new Op(env);
  op->what = "rbd_aio_discard";
  rbd_image_t img = image_;
  return Submit(env, op, [=](rbd_completion_t c) { return rbd_aio_discard(img, off, len, c); });
}

Napi::Value RbdImage::WriteZeroes(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t off = ArgU64(info, 0, "offset");
  uint64_t len = ArgU64(info, 1, "length");
  bool thick = ArgBool(info, 2, "thick", false);
  if (int r = Usable()) return Rejected(env, r, "rbd_aio_write_zeroes " + name_);
  if (readOnly_) return Rejected(env, -EROFS, "rbd_aio_write_zeroes " + name_);
  Op *op = new Op(env);
  op->what = "rbd_aio_write_zeroes";
  rbd_image_t img = image_;
  int zflags = thick ? RBD_WRITE_ZEROES_FLAG_THICK_PROVISION : 0;
  return Submit(env, op, [=](rbd_completion_t c) { return rbd_aio_write_zeroes(img, off, len, c, zflags, 0); });
}

Napi::Value RbdImage::CompareAndWrite(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t off = ArgU64(info, 0, "offset");
  Napi::Buffer<char> cmp = ArgBuffer(info, 1, "compare");
  Napi::Buffer<char> data = ArgBuffer(info, 2, "data");
  bool fua = ArgBool(info, 3, "fua", false);
  if (cmp.Length() != data.Length()) throw Napi::RangeError::New(env, "compare and data must have the same length");
  if (int r = Usable()) return Rejected(env, r, "rbd_aio_compare_and_write " + name_);
  if (readOnly_) return Rejected(env, -EROFS, "rbd_aio_compare_and_write " + name_);
  Op *op = new Op(env);
  op->kind = Op::CompareAndWrite;
  op->what = "rbd_aio_compare_and_write";
  op->offset = off;
  op->pin1 = Napi::Persistent(cmp);
  op->pin2 = Napi::Persistent(data);
  const char *cbuf = cmp.Data();
  const char *wbuf = data.Data();
  size_t len = data.Length();
  uint64_t *mm = &op->mismatch;
  rbd_image_t img = image_;
  int flags = fua ? LIBRADOS_OP_FLAG_FADVISE_FUA : 0;
  return Submit(env, op, [=](rbd_completion_t c) {
    return static_cast<int>(rbd_aio_compare_and_write(img, off, len, cbuf, wbuf, c, mm, flags));
  });
}

Napi::Value RbdImage::Flush(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (int r = Usable()) return Rejected(env, r, "rbd_aio_flush " + name_);
  Op *op = new Op(env);
  op->what = "rbd_aio_flush";
  rbd_image_t img = image_;
  return Submit(env, op, [=](rbd_completion_t c) { return rbd_aio_flush(img, c); });
}

Napi::Value RbdImage::Close(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (image_ == nullptr) return Rejected(env, -EBADF, "rbd_close " + name_);
  auto d = Napi::Promise::Deferred::New(env);
  closeWaiters_.push_back(d);
  if (!closing_) {
    closing_ = true;
    if (inflight_ == 0) StartClose(env, false);  // otherwise End() starts it when the last op settles
  }
  return d.Promise();
}

// rbd_close on the pool (it flushes, releases the exclusive lock, unregisters the header watch).
void RbdImage::StartClose(Napi::Env env, bool refsHeld) {
  rbd_image_t img = image_;
  auto handles = std::make_shared<std::vector<uint64_t>>();
  for (auto &w : watches_) handles->push_back(w.second->handle);
  if (refsHeld)
    inflight_++;
  else
    Begin(env);
  auto result = std::make_shared<int>(0);
  Async(
      env, "rbd_close " + name_,
      [img, handles, result]() -> int {
        for (uint64_t h : *handles) rbd_update_unwatch(img, h);
        *result = rbd_close(img);
        return 0;  // reported to the close() callers below
      },
      nullptr, Value(),
      [this, env, result]() {
        // Closed: rbd_close frees the handle even when it reports an error (a failed flush).
        image_ = nullptr;
        for (auto &w : watches_) {
          w.second->tsfn.Release();
          delete w.second;
        }
        watches_.clear();
        for (auto &d : closeWaiters_) {
          if (*result < 0)
            d.Reject(ErrnoError(env, *result, "rbd_close " + name_).Value());
          else
            d.Resolve(env.Undefined());
        }
        closeWaiters_.clear();
        inflight_--;
        tsfn.Unref(env);
        Unref();
        tsfn.Release();
        io_.reset();
      });
}

Napi::Value RbdImage::Size(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (image_ == nullptr) ThrowErrno(env, -EBADF, "rbd_get_size " + name_);
  uint64_t size = 0;
  int r = rbd_get_size(image_, &size);  // cached header state, no I/O
  if (r < 0) ThrowErrno(env, r, "rbd_get_size " + name_);
  return Napi::Number::New(env, static_cast<double>(size));
}

Napi::Value RbdImage::InFlight(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), inflight_); }

Napi::Value RbdImage::Call(Napi::Env env, const std::string &what, std::function<int(rbd_image_t)> work,
                           std::function<Napi::Value(Napi::Env)> done) {
  if (int r = Usable()) return Rejected(env, r, what + " " + name_);
  rbd_image_t img = image_;
  Begin(env);
  return Async(
      env, what + " " + name_, [img, work]() -> int { return work(img); }, std::move(done), Value(),
      [this, env]() { End(env); });
}

static double Num(uint64_t v) { return static_cast<double>(v); }

Napi::Value RbdImage::Info(const Napi::CallbackInfo &info) {
  struct R {
    rbd_image_info_t st{};
    uint64_t features = 0, opFeatures = 0, flags = 0, stripeUnit = 0, stripeCount = 0, overlap = 0;
    int64_t dataPool = -1;
    std::string id, prefix;
    struct timespec created {};
    bool hasParent = false;
    std::string pPool, pNs, pImage, pImageId, pSnap;
    uint64_t pSnapId = 0;
  };
  auto res = std::make_shared<R>();
  return Call(
      info.Env(), "rbd_stat",
      [res](rbd_image_t img) -> int {
        int r = rbd_stat(img, &res->st, sizeof res->st);
        if (r < 0) return r;
        if ((r = rbd_get_features(img, &res->features)) < 0) return r;
        if ((r = rbd_get_op_features(img, &res->opFeatures)) < 0) return r;
        if ((r = rbd_get_flags(img, &res->flags)) < 0) return r;
        if ((r = rbd_get_stripe_unit(img, &res->stripeUnit)) < 0) return r;
        if ((r = rbd_get_stripe_count(img, &res->stripeCount)) < 0) return r;
        res->dataPool = rbd_get_data_pool_id(img);
        char buf[128];
        if ((r = rbd_get_id(img, buf, sizeof buf)) < 0) return r;
        res->id = buf;
        if ((r = rbd_get_block_name_prefix(img, buf, sizeof buf)) < 0) return r;
        res->prefix = buf;
        if ((r = rbd_get_create_timestamp(img, &res->created)) < 0) return r;
        rbd_linked_image_spec_t parent{};
        rbd_snap_spec_t psnap{};
        r = rbd_get_parent(img, &parent, &psnap);
        if (r == 0) {
          res->hasParent = true;
          res->pPool = parent.pool_name ? parent.pool_name : "";
          res->pNs = parent.pool_namespace ? parent.pool_namespace : "";
          res->pImage = parent.image_name ? parent.image_name : "";
          res->pImageId = parent.image_id ? parent.image_id : "";
          res->pSnap = psnap.name ? psnap.name : "";
          res->pSnapId = psnap.id;
          rbd_linked_image_spec_cleanup(&parent);
          rbd_snap_spec_cleanup(&psnap);
          if ((r = rbd_get_overlap(img, &res->overlap)) < 0) return r;
        } else if (r != -ENOENT) {
          return r;
        }
        return 0;
      },
      [res](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("size", Num(res->st.size));
        o.Set("objectSize", Num(res->st.obj_size));
        o.Set("order", res->st.order);
        o.Set("numObjects", Num(res->st.num_objs));
        o.Set("blockNamePrefix", res->prefix);
        o.Set("id", res->id);
        o.Set("features", Num(res->features));
        o.Set("opFeatures", Num(res->opFeatures));
        o.Set("flags", Num(res->flags));
        o.Set("stripeUnit", Num(res->stripeUnit));
        o.Set("stripeCount", Num(res->stripeCount));
        o.Set("dataPoolId", static_cast<double>(res->dataPool));
        o.Set("createTimestamp", static_cast<double>(res->created.tv_sec));
        if (res->hasParent) {
          Napi::Object p = Napi::Object::New(env);
          p.Set("pool", res->pPool);
          p.Set("namespace", res->pNs);
          p.Set("image", res->pImage);
          p.Set("imageId", res->pImageId);
          p.Set("snapshot", res->pSnap);
          p.Set("snapshotId", Num(res->pSnapId));
          p.Set("overlap", Num(res->overlap));
          o.Set("parent", p);
        } else {
          o.Set("parent", env.Null());
        }
        return o;
      });
}

Napi::Value RbdImage::Resize(const Napi::CallbackInfo &info) {
  uint64_t size = ArgU64(info, 0, "size");
  bool allowShrink = ArgBool(info, 1, "allowShrink", false);
  // librbd calls the progress callback unconditionally: it must not be null.
  auto noProgress = [](uint64_t, uint64_t, void *) -> int { return 0; };
  return Call(info.Env(), "rbd_resize2", [=](rbd_image_t img) {
    return rbd_resize2(img, size, allowShrink, noProgress, nullptr);
  });
}

Napi::Value RbdImage::UpdateFeatures(const Napi::CallbackInfo &info) {
  uint64_t mask = ArgU64(info, 0, "mask");
  bool enabled = ArgBool(info, 1, "enabled", true);
  return Call(info.Env(), "rbd_update_features", [=](rbd_image_t img) { return rbd_update_features(img, mask, enabled ? 1 : 0); });
}

Napi::Value RbdImage::DiffIterate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bool haveFrom = info[0].IsString();
  if (!haveFrom && !info[0].IsNull() && !info[0].IsUndefined()) throw Napi::TypeError::New(env, "fromSnapshot must be a string or null");
  std::string from = haveFrom ? info[0].As<Napi::String>().Utf8Value() : "";
  uint64_t off = ArgU64(info, 1, "offset");
  uint64_t len = ArgU64(info, 2, "length");
  bool includeParent = ArgBool(info, 3, "includeParent", true);
  bool wholeObject = ArgBool(info, 4, "wholeObject", false);
  auto out = std::make_shared<std::vector<uint64_t>>();
  return Call(
      env, "rbd_diff_iterate2",
      [=](rbd_image_t img) {
        // The callback runs on this pool thread, synchronously inside rbd_diff_iterate2.
        auto cb = [](uint64_t o, size_t l, int exists, void *arg) -> int {
          auto *v = static_cast<std::vector<uint64_t> *>(arg);
          // Merge with the previous extent when contiguous and of the same kind (bounded output).
          if (v->size() >= 3 && (*v)[v->size() - 3] + (*v)[v->size() - 2] == o && (*v)[v->size() - 1] == static_cast<uint64_t>(exists ? 1 : 0)) {
            (*v)[v->size() - 2] += l;
          } else {
            v->push_back(o);
            v->push_back(l);
            v->push_back(exists ? 1 : 0);
          }
          return 0;
        };
        return rbd_diff_iterate2(img, haveFrom ? from.c_str() : nullptr, off, len, includeParent ? 1 : 0, wholeObject ? 1 : 0, cb, out.get());
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array a = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); i++) a.Set(i, Num((*out)[i]));
        return a;
      });
}

Napi::Value RbdImage::SnapCreate(const Napi::CallbackInfo &info) {
  std::string n = ArgString(info, 0, "name");
  return Call(info.Env(), "rbd_snap_create " + n, [n](rbd_image_t img) { return rbd_snap_create(img, n.c_str()); });
}

Napi::Value RbdImage::SnapRemove(const Napi::CallbackInfo &info) {
  std::string n = ArgString(info, 0, "name");
  return Call(info.Env(), "rbd_snap_remove " + n, [n](rbd_image_t img) { return rbd_snap_remove(img, n.c_str()); });
}

Napi::Value RbdImage::SnapRollback(const Napi::CallbackInfo &info) {
  std::string n = ArgString(info, 0, "name");
  return Call(info.Env(), "rbd_snap_rollback " + n, [n](rbd_image_t img) { return rbd_snap_rollback(img, n.c_str()); });
}

Napi::Value RbdImage::SnapProtect(const Napi::CallbackInfo &info) {
  std::string n = ArgString(info, 0, "name");
  return Call(info.Env(), "rbd_snap_protect " + n, [n](rbd_image_t img) { return rbd_snap_protect(img, n.c_str()); });
}

Napi::Value RbdImage::SnapUnprotect(const Napi::CallbackInfo &info) {
  std::string n = ArgString(info, 0, "name");
  return Call(info.Env(), "rbd_snap_unprotect " + n, [n](rbd_image_t img) { return rbd_snap_unprotect(img, n.c_str()); });
}

Napi::Value RbdImage::SnapIsProtected(const Napi::CallbackInfo &info) {
  std::string n = ArgString(info, 0, "name");
  auto p = std::make_shared<int>(0);
  return Call(
      info.Env(), "rbd_snap_is_protected " + n, [n, p](rbd_image_t img) { return rbd_snap_is_protected(img, n.c_str(), p.get()); },
      [p](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *p != 0); });
}

Napi::Value RbdImage::SnapList(const Napi::CallbackInfo &info) {
  struct S {
    uint64_t id, size;
    std::string name;
    int64_t ts;
    bool prot;
  };
  auto out = std::make_shared<std::vector<S>>();
  return Call(
      info.Env(), "rbd_snap_list",
      [out](rbd_image_t img) -> int {
        std::vector<rbd_snap_info_t> snaps(16);
        int n = 0;
        for (int tries = 0; tries < 8; tries++) {
          int max = static_cast<int>(snaps.size());
          n = rbd_snap_list(img, snaps.data(), &max);
          if (n != -ERANGE) break;
          snaps.resize(static_cast<size_t>(max) + 1);
        }
        if (n < 0) return n;
        int r = 0;
        for (int i = 0; i < n; i++) {
          S s{snaps[i].id, snaps[i].size, snaps[i].name, 0, false};
          struct timespec ts {};
          if (rbd_snap_get_timestamp(img, s.id, &ts) == 0) s.ts = ts.tv_sec;
          int prot = 0;
          r = rbd_snap_is_protected(img, s.name.c_str(), &prot);
          if (r < 0) break;
          s.prot = prot != 0;
          out->push_back(s);
        }
        rbd_snap_list_end(snaps.data());
        return r;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array a = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", Num((*out)[i].id));
          o.Set("name", (*out)[i].name);
          o.Set("size", Num((*out)[i].size));
          o.Set("timestamp", static_cast<double>((*out)[i].ts));
          o.Set("protected", (*out)[i].prot);
          a.Set(i, o);
        }
        return a;
      });
}

Napi::Value RbdImage::Flatten(const Napi::CallbackInfo &info) {
  return Call(info.Env(), "rbd_flatten", [](rbd_image_t img) { return rbd_flatten(img); });
}

Napi::Value RbdImage::ListChildren(const Napi::CallbackInfo &info) {
  struct C {
    std::string pool, ns, id, name;
    bool trash;
  };
  auto out = std::make_shared<std::vector<C>>();
  return Call(
      info.Env(), "rbd_list_children3",
      [out](rbd_image_t img) -> int {
        std::vector<rbd_linked_image_spec_t> v(16);
        size_t max = v.size();
        int r = 0;
        for (int tries = 0; tries < 8; tries++) {
          max = v.size();
          r = rbd_list_children3(img, v.data(), &max);
          if (r != -ERANGE) break;
          v.resize(max);
        }
        if (r < 0) return r;
        for (size_t i = 0; i < max; i++) {
          out->push_back({v[i].pool_name ? v[i].pool_name : "", v[i].pool_namespace ? v[i].pool_namespace : "",
                          v[i].image_id ? v[i].image_id : "", v[i].image_name ? v[i].image_name : "", v[i].trash});
        }
        rbd_linked_image_spec_list_cleanup(v.data(), max);
        return 0;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array a = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("pool", (*out)[i].pool);
          o.Set("namespace", (*out)[i].ns);
          o.Set("imageId", (*out)[i].id);
          o.Set("image", (*out)[i].name);
          o.Set("trash", (*out)[i].trash);
          a.Set(i, o);
        }
        return a;
      });
}

Napi::Value RbdImage::MetadataGet(const Napi::CallbackInfo &info) {
  std::string key = ArgString(info, 0, "key");
  auto val = std::make_shared<std::string>();
  return Call(
      info.Env(), "rbd_metadata_get " + key,
      [key, val](rbd_image_t img) -> int {
        std::vector<char> buf(256);
        for (int tries = 0; tries < 4; tries++) {
          size_t len = buf.size();
          int r = rbd_metadata_get(img, key.c_str(), buf.data(), &len);
          if (r == -ERANGE) {
            buf.resize(len);
            continue;
          }
          if (r < 0) return r;
          val->assign(buf.data(), strnlen(buf.data(), std::min(len, buf.size())));
          return 0;
        }
        return -ERANGE;
      },
      [val](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *val); });
}

Napi::Value RbdImage::MetadataSet(const Napi::CallbackInfo &info) {
  std::string key = ArgString(info, 0, "key");
  std::string value = ArgString(info, 1, "value");
  return Call(info.Env(), "rbd_metadata_set " + key, [=](rbd_image_t img) { return rbd_metadata_set(img, key.c_str(), value.c_str()); });
}

Napi::Value RbdImage::MetadataRemove(const Napi::CallbackInfo &info) {
  std::string key = ArgString(info, 0, "key");
  return Call(info.Env(), "rbd_metadata_remove " + key, [=](rbd_image_t img) { return rbd_metadata_remove(img, key.c_str()); });
}

Napi::Value RbdImage::MetadataList(const Napi::CallbackInfo &info) {
  auto out = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
  return Call(
      info.Env(), "rbd_metadata_list",
      [out](rbd_image_t img) -> int {
        std::vector<char> keys(4096), vals(4096);
        for (int tries = 0; tries < 8; tries++) {
          size_t kl = keys.size(), vl = vals.size();
          int r = rbd_metadata_list(img, "", 0, keys.data(), &kl, vals.data(), &vl);
          if (r == -ERANGE) {
            keys.resize(kl);
            vals.resize(vl);
            continue;
          }
          if (r < 0) return r;
          const char *k = keys.data(), *v = vals.data();
          while (k < keys.data() + kl && *k != '\0' && v < vals.data() + vl) {
            out->emplace_back(k, v);
            k += strlen(k) + 1;
            v += strlen(v) + 1;
          }
          return 0;
        }
        return -ERANGE;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        for (auto &kv : *out) o.Set(kv.first, kv.second);
        return o;
      });
}

Napi::Value RbdImage::LockAcquire(const Napi::CallbackInfo &info) {
  return Call(info.Env(), "rbd_lock_acquire", [](rbd_image_t img) { return rbd_lock_acquire(img, RBD_LOCK_MODE_EXCLUSIVE); });
}

Napi::Value RbdImage::LockRelease(const Napi::CallbackInfo &info) {
  return Call(info.Env(), "rbd_lock_release", [](rbd_image_t img) { return rbd_lock_release(img); });
}

Napi::Value RbdImage::LockGetOwners(const Napi::CallbackInfo &info) {
  struct R {
    rbd_lock_mode_t mode = RBD_LOCK_MODE_EXCLUSIVE;
    std::vector<std::string> owners;
  };
  auto res = std::make_shared<R>();
  return Call(
      info.Env(), "rbd_lock_get_owners",
      [res](rbd_image_t img) -> int {
        std::vector<char *> owners(8);
        size_t max = owners.size();
        int r = 0;
        for (int tries = 0; tries < 6; tries++) {
          max = owners.size();
          r = rbd_lock_get_owners(img, &res->mode, owners.data(), &max);
          if (r != -ERANGE) break;
          owners.resize(max);
        }
        if (r == -ENOENT) return 0;  // nobody holds the lock
        if (r < 0) return r;
        for (size_t i = 0; i < max; i++) res->owners.emplace_back(owners[i]);
        rbd_lock_get_owners_cleanup(owners.data(), max);
        return 0;
      },
      [res](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("mode", res->mode == RBD_LOCK_MODE_SHARED ? "shared" : "exclusive");
        Napi::Array a = Napi::Array::New(env, res->owners.size());
        for (size_t i = 0; i < res->owners.size(); i++) a.Set(i, res->owners[i]);
        o.Set("owners", a);
        return o;
      });
}

Napi::Value RbdImage::LockBreak(const Napi::CallbackInfo &info) {
  std::string owner = ArgString(info, 0, "owner");
  return Call(info.Env(), "rbd_lock_break", [owner](rbd_image_t img) { return rbd_lock_break(img, RBD_LOCK_MODE_EXCLUSIVE, owner.c_str()); });
}

Napi::Value RbdImage::IsLockOwner(const Napi::CallbackInfo &info) {
  auto owner = std::make_shared<int>(0);
  return Call(
      info.Env(), "rbd_is_exclusive_lock_owner", [owner](rbd_image_t img) { return rbd_is_exclusive_lock_owner(img, owner.get()); },
      [owner](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *owner != 0); });
}

Napi::Value RbdImage::Watchers(const Napi::CallbackInfo &info) {
  struct W {
    std::string addr;
    int64_t id;
    uint64_t cookie;
  };
  auto out = std::make_shared<std::vector<W>>();
  return Call(
      info.Env(), "rbd_watchers_list",
      [out](rbd_image_t img) -> int {
        std::vector<rbd_image_watcher_t> v(8);
        size_t max = v.size();
        int r = 0;
        for (int tries = 0; tries < 6; tries++) {
          max = v.size();
          r = rbd_watchers_list(img, v.data(), &max);
          if (r != -ERANGE) break;
          v.resize(max);
        }
        if (r < 0) return r;
        for (size_t i = 0; i < max; i++) out->push_back({v[i].addr ? v[i].addr : "", v[i].id, v[i].cookie});
        rbd_watchers_list_cleanup(v.data(), max);
        return 0;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array a = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("address", (*out)[i].addr);
          o.Set("id", static_cast<double>((*out)[i].id));
          o.Set("cookie", Num((*out)[i].cookie));
          a.Set(i, o);
        }
        return a;
      });
}

Napi::Value RbdImage::UpdateWatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "listener must be a function");
  if (int r = Usable()) return Rejected(env, r, "rbd_update_watch " + name_);
  auto *w = new WatchCtx();
  w->tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "rbd_update_watch", 0, 1);
  w->tsfn.Unref(env);  // a watch alone does not keep the process alive
  // Registration is local to the ImageCtx (the header watch already exists): no I/O.
  int r = rbd_update_watch(image_, &w->handle, OnUpdate, w);
  if (r < 0) {
    w->tsfn.Release();
    delete w;
    return Rejected(env, r, "rbd_update_watch " + name_);
  }
  watches_[w->handle] = w;
  auto d = Napi::Promise::Deferred::New(env);
  d.Resolve(Napi::Number::New(env, Num(w->handle)));
  return d.Promise();
}

Napi::Value RbdImage::UpdateUnwatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t handle = ArgU64(info, 0, "handle");
  if (int r = Usable()) return Rejected(env, r, "rbd_update_unwatch " + name_);  // close unwatches it
  auto it = watches_.find(handle);
  if (it == watches_.end()) return Rejected(env, -ENOENT, "rbd_update_unwatch " + name_);
  WatchCtx *w = it->second;
  watches_.erase(it);
  // Unwatch waits for a notification being delivered: on the pool, then release on the JS thread.
  // If librbd refuses, the context is leaked on purpose: a late callback must find it.
  return Call(
      env, "rbd_update_unwatch", [handle](rbd_image_t img) { return rbd_update_unwatch(img, handle); },
      [w](Napi::Env env) -> Napi::Value {
        w->tsfn.Release();
        delete w;
        return env.Undefined();
      });
}

}  // namespace

void InitRbdImage(Napi::Env env, Napi::Object exports) { RbdImage::Init(env, exports); }

}  // namespace ceph
