// RADOS object operations for the configuration store (src/ceph/rados-object.ts): whole-object
// read, stat, xattrs, omap, atomic compound writes (cmpxattr / assert_version / cls exec: the
// compare-and-swap primitives), cls advisory locks with a duration, watch/notify.
//
// Threading: reads, writes and notify go through librados aio; their completions arrive on a
// librados thread and are handed to the JS thread through a thread-safe function (nothing else
// runs on the librados thread). The lock calls exist only synchronously in the C API, so they
// run on the libuv pool. Watch callbacks ack the notify at once (on the librados thread: the
// ack is queued, not waited for) and pass the event to JS through the watch's own TSFN; a watch
// registered with manual acks leaves the ack to JS (objNotifyAck, with a reply payload), so the
// notifier learns when the watcher has acted on the notify, not only that it arrived.
// Every input Buffer is copied into the operation (configuration objects are small), so JS may
// reuse its buffers at once; the JS IoCtx is referenced until the operation ends.

#include <napi.h>
#include <rados/librados.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ceph.h"

namespace {

Napi::Error RadosError(Napi::Env env, int r, const std::string& what) { return ceph::ErrnoError(env, r, what); }

// The open IoCtx behind a JS IoCtx (throws TypeError / EBADF when it is none or closed). The
// shared handle is held by every operation until it ends, so a close() meanwhile is safe.
rados_ioctx_t IoOf(const Napi::CallbackInfo& info, ceph::IoCtxRef* ref) {
  *ref = ceph::IoCtx::From(info.Env(), info[0])->Ref(info.Env());
  return (*ref)->io;
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* name, double min, double max) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max)) throw Napi::RangeError::New(info.Env(), std::string(name) + " is out of range");
  return v;
}

std::string BytesOf(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(env, std::string(name) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<char>>();
  return std::string(b.Data(), b.Length());
}

// ---------------------------------------------------------------------------- aio plumbing

// One asynchronous librados operation: submitted on the JS thread, completed on a librados
// thread, settled on the JS thread.
struct AioOp {
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction tsfn;
  ceph::IoCtxRef ref;  // keeps the rados_ioctx_t alive while the op is in flight
  rados_ioctx_t io;
  std::string oid;
  std::string what;
  rados_completion_t comp = nullptr;
  int r = 0;
  uint64_t version = 0;

  AioOp(Napi::Env env, Napi::Value, ceph::IoCtxRef r_, rados_ioctx_t io_, std::string oid_, std::string what_)
      : deferred(Napi::Promise::Deferred::New(env)), ref(std::move(r_)), io(io_), oid(std::move(oid_)), what(std::move(what_)) {}
  virtual ~AioOp() {
    if (comp) rados_aio_release(comp);
  }
  // On the JS thread after success (r >= 0, or a result the op wants to interpret itself).
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  // Whether a negative r is a result rather than a failure (e.g. ENOENT on read = null).
  virtual bool Tolerates(int) { return false; }

  static void OnComplete(rados_completion_t c, void* arg) {
    AioOp* op = static_cast<AioOp*>(arg);
    op->r = rados_aio_get_return_value(c);
    op->version = rados_aio_get_version(c);
    // The JS thread may settle and free op before Release returns: use a copy of the handle.
    Napi::ThreadSafeFunction tsfn = op->tsfn;
    tsfn.NonBlockingCall(op, Settle);
    tsfn.Release();
  }

  static void Settle(Napi::Env env, Napi::Function, AioOp* op) {
    std::unique_ptr<AioOp> owned(op);
    if (env == nullptr) return;  // environment shutting down
    Napi::HandleScope scope(env);
    if (op->r < 0 && !op->Tolerates(op->r)) {
      op->deferred.Reject(RadosError(env, op->r, op->what).Value());
      return;
    }
    try {
      op->deferred.Resolve(op->Result(env));
    } catch (const Napi::Error& e) {
      op->deferred.Reject(e.Value());
    }
  }

  // Prepare the completion and the TSFN; then the caller submits and calls Submitted(r).
  bool Prepare(Napi::Env env) {
    tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "rados-object", 0, 1);
    int r = rados_aio_create_completion2(this, OnComplete, &comp);
    if (r < 0) {
      deferred.Reject(RadosError(env, r, what).Value());
      return false;
    }
    return true;
  }

  // After submission: a synchronous refusal settles at once (the completion will not fire).
  static Napi::Value Submitted(Napi::Env env, AioOp* op, int r) {
    Napi::Promise p = op->deferred.Promise();
    if (r < 0) {
      op->deferred.Reject(RadosError(env, r, op->what).Value());
      op->tsfn.Release();
      delete op;
    }
    return p;
  }

  static Napi::Value Failed(Napi::Env env, AioOp* op) {
    Napi::Promise p = op->deferred.Promise();
    op->tsfn.Release();
    delete op;
    return p;
  }
};

// ---------------------------------------------------------------------------- read

struct ReadOp : AioOp {
  rados_read_op_t rop = nullptr;
  std::vector<char> buf;
  uint64_t size = 0;
  time_t mtime = 0;
  int statRval = 0, xattrRval = 0, readRval = 0;
  size_t bytesRead = 0;
  rados_xattrs_iter_t xattrs = nullptr;
  bool wantData = true;

  using AioOp::AioOp;
  ~ReadOp() override {
    if (xattrs) rados_getxattrs_end(xattrs);
    if (rop) rados_release_read_op(rop);
  }
  bool Tolerates(int r) override { return r == -ENOENT; }
  Napi::Value Result(Napi::Env env) override {
    if (r == -ENOENT) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    Napi::Object attrs = Napi::Object::New(env);
    if (xattrRval >= 0 && xattrs) {
      for (;;) {
        const char* name = nullptr;
        const char* val = nullptr;
        size_t len = 0;
        if (rados_getxattrs_next(xattrs, &name, &val, &len) < 0 || name == nullptr) break;
        attrs.Set(name, Napi::Buffer<char>::Copy(env, val, len));
      }
    }
    o.Set("xattrs", attrs);
    o.Set("size", Napi::Number::New(env, static_cast<double>(size)));
    o.Set("mtime", Napi::Number::New(env, static_cast<double>(mtime)));
    o.Set("version", Napi::BigInt::New(env, version));
    if (wantData) o.Set("data", Napi::Buffer<char>::Copy(env, buf.data(), bytesRead));
    return o;
  }
};

// objRead(io, oid, sizeHint) -> {data, size, xattrs, version} | null
Napi::Value ObjRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  size_t hint = static_cast<size_t>(NumberArg(info, 2, "sizeHint", 0, 1 << 30));
  auto* op = new ReadOp(env, info[0], wrapper, io, oid, "read " + oid);
  if (!op->Prepare(env)) return AioOp::Failed(env, op);
  op->buf.resize(hint > 0 ? hint : 1);
  op->rop = rados_create_read_op();
  rados_read_op_stat(op->rop, &op->size, &op->mtime, &op->statRval);
  rados_read_op_getxattrs(op->rop, &op->xattrs, &op->xattrRval);
  rados_read_op_read(op->rop, 0, op->buf.size(), op->buf.data(), &op->bytesRead, &op->readRval);
  int r = rados_aio_read_op_operate(op->rop, io, op->comp, oid.c_str(), 0);
  return AioOp::Submitted(env, op, r);
}

// objStat(io, oid) -> {size, mtime} | null (stat + xattrs, no data)
Napi::Value ObjStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  auto* op = new ReadOp(env, info[0], wrapper, io, oid, "stat " + oid);
  if (!op->Prepare(env)) return AioOp::Failed(env, op);
  op->wantData = false;
  op->rop = rados_create_read_op();
  rados_read_op_stat(op->rop, &op->size, &op->mtime, &op->statRval);
  int r = rados_aio_read_op_operate(op->rop, io, op->comp, oid.c_str(), 0);
  return AioOp::Submitted(env, op, r);
}

struct XattrOp : ReadOp {
  std::string name;
  using ReadOp::ReadOp;
  Napi::Value Result(Napi::Env env) override {
    if (r == -ENOENT || xattrRval < 0 || !xattrs) return env.Null();
    for (;;) {
      const char* n = nullptr;
      const char* val = nullptr;
      size_t len = 0;
      if (rados_getxattrs_next(xattrs, &n, &val, &len) < 0 || n == nullptr) break;
      if (name == n) return Napi::Buffer<char>::Copy(env, val, len);
    }
    return env.Null();
  }
};

// objGetXattr(io, oid, name) -> Buffer | null
Napi::Value ObjGetXattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  std::string name = StringArg(info, 2, "name");
  auto* op = new XattrOp(env, info[0], wrapper, io, oid, "getxattr " + name + " of " + oid);
  op->name = name;
  if (!op->Prepare(env)) return AioOp::Failed(env, op);
  op->rop = rados_create_read_op();
  rados_read_op_getxattrs(op->rop, &op->xattrs, &op->xattrRval);
  int r = rados_aio_read_op_operate(op->rop, io, op->comp, oid.c_str(), 0);
  return AioOp::Submitted(env, op, r);
}

struct OmapOp : AioOp {
  rados_read_op_t rop = nullptr;
  rados_omap_iter_t iter = nullptr;
  unsigned char more = 0;
  int rval = 0;
  std::string startAfter;
  using AioOp::AioOp;
  ~OmapOp() override {
    if (iter) rados_omap_get_end(iter);
    if (rop) rados_release_read_op(rop);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array entries = Napi::Array::New(env);
    uint32_t n = 0;
    if (rval >= 0 && iter) {
      for (;;) {
        char* key = nullptr;
        char* val = nullptr;
        size_t klen = 0, vlen = 0;
        if (rados_omap_get_next2(iter, &key, &val, &klen, &vlen) < 0 || key == nullptr) break;
        Napi::Array pair = Napi::Array::New(env, 2);
        pair.Set(0u, Napi::String::New(env, key, klen));
        pair.Set(1u, Napi::Buffer<char>::Copy(env, val, vlen));
        entries.Set(n++, pair);
      }
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("entries", entries);
    o.Set("more", Napi::Boolean::New(env, more != 0));
    return o;
  }
};

// objOmapGet(io, oid, startAfter, max) -> {entries: [[key, Buffer]], more}
Napi::Value ObjOmapGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  auto* op = new OmapOp(env, info[0], wrapper, io, oid, "omap get of " + oid);
  op->startAfter = StringArg(info, 2, "startAfter");
  uint64_t max = static_cast<uint64_t>(NumberArg(info, 3, "max", 1, 1e6));
  if (!op->Prepare(env)) return AioOp::Failed(env, op);
  op->rop = rados_create_read_op();
  rados_read_op_omap_get_vals2(op->rop, op->startAfter.c_str(), "", max, &op->iter, &op->more, &op->rval);
  int r = rados_aio_read_op_operate(op->rop, io, op->comp, oid.c_str(), 0);
  return AioOp::Submitted(env, op, r);
}

// ---------------------------------------------------------------------------- compound write

struct WriteOp : AioOp {
  rados_write_op_t wop = nullptr;
  // Owned copies of everything the write op points to, alive until completion.
  std::vector<std::unique_ptr<std::string>> strings;
  std::vector<std::unique_ptr<std::vector<const char*>>> ptrs;
  std::vector<std::unique_ptr<std::vector<size_t>>> lens;
  std::vector<std::unique_ptr<int>> rvals;
  using AioOp::AioOp;
  ~WriteOp() override {
    if (wop) rados_release_write_op(wop);
  }
  const std::string& Keep(std::string s) {
    strings.push_back(std::make_unique<std::string>(std::move(s)));
    return *strings.back();
  }
  int* Rval() {
    rvals.push_back(std::make_unique<int>(0));
    return rvals.back().get();
  }
};

uint8_t Comparison(Napi::Env env, const std::string& c) {
  if (c == "eq") return LIBRADOS_CMPXATTR_OP_EQ;
  if (c == "ne") return LIBRADOS_CMPXATTR_OP_NE;
  if (c == "gt") return LIBRADOS_CMPXATTR_OP_GT;
  if (c == "gte") return LIBRADOS_CMPXATTR_OP_GTE;
  if (c == "lt") return LIBRADOS_CMPXATTR_OP_LT;
  if (c == "lte") return LIBRADOS_CMPXATTR_OP_LTE;
  throw Napi::TypeError::New(env, "unknown xattr comparison " + c);
}

std::string Field(Napi::Env env, const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsString()) throw Napi::TypeError::New(env, std::string("write step: ") + name + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

void AddStep(Napi::Env env, WriteOp* op, const Napi::Object& s) {
  std::string kind = Field(env, s, "op");
  rados_write_op_t w = op->wop;
  if (kind == "create") {
    rados_write_op_create(w, s.Get("exclusive").ToBoolean() ? LIBRADOS_CREATE_EXCLUSIVE : LIBRADOS_CREATE_IDEMPOTENT, nullptr);
  } else if (kind == "assertExists") {
    rados_write_op_assert_exists(w);
  } else if (kind == "assertVersion") {
    Napi::Value v = s.Get("version");
    if (!v.IsBigInt()) throw Napi::TypeError::New(env, "write step: version must be a bigint");
    bool lossless = true;
    uint64_t ver = v.As<Napi::BigInt>().Uint64Value(&lossless);
    rados_write_op_assert_version(w, ver);
  } else if (kind == "cmpxattr") {
    const std::string& name = op->Keep(Field(env, s, "name"));
    uint8_t cmp = Comparison(env, Field(env, s, "comparison"));
    const std::string& val = op->Keep(BytesOf(env, s.Get("value"), "value"));
    rados_write_op_cmpxattr(w, name.c_str(), cmp, val.data(), val.size());
  } else if (kind == "writeFull") {
    const std::string& data = op->Keep(BytesOf(env, s.Get("data"), "data"));
    rados_write_op_write_full(w, data.data(), data.size());
  } else if (kind == "setxattr") {
    const std::string& name = op->Keep(Field(env, s, "name"));
    const std::string& val = op->Keep(BytesOf(env, s.Get("value"), "value"));
    rados_write_op_setxattr(w, name.c_str(), val.data(), val.size());
  } else if (kind == "rmxattr") {
    const std::string& name = op->Keep(Field(env, s, "name"));
    rados_write_op_rmxattr(w, name.c_str());
  } else if (kind == "omapSet" || kind == "omapRemove") {
    Napi::Value kv = s.Get("keys");
    if (!kv.IsArray()) throw Napi::TypeError::New(env, "write step: keys must be an array");
    Napi::Array keys = kv.As<Napi::Array>();
    auto kp = std::make_unique<std::vector<const char*>>();
    auto kl = std::make_unique<std::vector<size_t>>();
    auto vp = std::make_unique<std::vector<const char*>>();
    auto vl = std::make_unique<std::vector<size_t>>();
    Napi::Array values;
    if (kind == "omapSet") {
      Napi::Value vv = s.Get("values");
      if (!vv.IsArray() || vv.As<Napi::Array>().Length() != keys.Length()) {
        throw Napi::TypeError::New(env, "write step: values must be an array as long as keys");
      }
      values = vv.As<Napi::Array>();
    }
    for (uint32_t i = 0; i < keys.Length(); i++) {
      Napi::Value k = keys.Get(i);
      if (!k.IsString()) throw Napi::TypeError::New(env, "write step: omap keys must be strings");
      const std::string& key = op->Keep(k.As<Napi::String>().Utf8Value());
      kp->push_back(key.data());
      kl->push_back(key.size());
      if (kind == "omapSet") {
        const std::string& val = op->Keep(BytesOf(env, values.Get(i), "omap value"));
        vp->push_back(val.data());
        vl->push_back(val.size());
      }
    }
    if (kind == "omapSet") {
      rados_write_op_omap_set2(w, kp->data(), vp->data(), kl->data(), vl->data(), kp->size());
    } else {
      rados_write_op_omap_rm_keys2(w, kp->data(), kl->data(), kp->size());
    }
    op->ptrs.push_back(std::move(kp));
    op->ptrs.push_back(std::move(vp));
    op->lens.push_back(std::move(kl));
    op->lens.push_back(std::move(vl));
  } else if (kind == "exec") {
    const std::string& cls = op->Keep(Field(env, s, "cls"));
    const std::string& method = op->Keep(Field(env, s, "method"));
    const std::string& in = op->Keep(BytesOf(env, s.Get("input"), "input"));
    rados_write_op_exec(w, cls.c_str(), method.c_str(), in.data(), in.size(), op->Rval());
  } else if (kind == "remove") {
    rados_write_op_remove(w);
  } else {
    throw Napi::TypeError::New(env, "unknown write step " + kind);
  }
}

// objOperate(io, oid, steps[]) -> undefined; all steps apply atomically or none
Napi::Value ObjOperate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  if (info.Length() < 3 || !info[2].IsArray()) throw Napi::TypeError::New(env, "steps must be an array");
  Napi::Array steps = info[2].As<Napi::Array>();
  if (steps.Length() == 0) throw Napi::RangeError::New(env, "steps must not be empty");
  auto op = std::make_unique<WriteOp>(env, info[0], wrapper, io, oid, "write " + oid);
  op->wop = rados_create_write_op();
  for (uint32_t i = 0; i < steps.Length(); i++) {
    Napi::Value s = steps.Get(i);
    if (!s.IsObject()) throw Napi::TypeError::New(env, "write step must be an object");
    AddStep(env, op.get(), s.As<Napi::Object>());  // throws before anything is submitted
  }
  WriteOp* raw = op.release();
  if (!raw->Prepare(env)) return AioOp::Failed(env, raw);
  int r = rados_aio_write_op_operate(raw->wop, io, raw->comp, oid.c_str(), nullptr, 0);
  return AioOp::Submitted(env, raw, r);
}

// ---------------------------------------------------------------------------- notify

struct NotifyOp : AioOp {
  std::string payload;
  char* reply = nullptr;
  size_t replyLen = 0;
  using AioOp::AioOp;
  ~NotifyOp() override {
    if (reply) rados_buffer_free(reply);
  }
  // A watcher that did not ack in time: still a result (the others were told).
  bool Tolerates(int r) override { return r == -ETIMEDOUT && reply != nullptr; }
  Napi::Value Result(Napi::Env env) override {
    struct notify_ack_t* acks = nullptr;
    struct notify_timeout_t* timeouts = nullptr;
    size_t nAcks = 0, nTimeouts = 0;
    Napi::Array replies = Napi::Array::New(env);
    Napi::Array timedOut = Napi::Array::New(env);
    if (reply && rados_decode_notify_response(reply, replyLen, &acks, &nAcks, &timeouts, &nTimeouts) == 0) {
      for (size_t i = 0; i < nAcks; i++) {
        Napi::Object a = Napi::Object::New(env);
        a.Set("notifierId", Napi::BigInt::New(env, acks[i].notifier_id));
        a.Set("cookie", Napi::BigInt::New(env, acks[i].cookie));
        a.Set("payload", Napi::Buffer<char>::Copy(env, acks[i].payload ? acks[i].payload : "", acks[i].payload ? acks[i].payload_len : 0));
        replies.Set(static_cast<uint32_t>(i), a);
      }
      for (size_t i = 0; i < nTimeouts; i++) {
        Napi::Object t = Napi::Object::New(env);
        t.Set("notifierId", Napi::BigInt::New(env, timeouts[i].notifier_id));
        t.Set("cookie", Napi::BigInt::New(env, timeouts[i].cookie));
        timedOut.Set(static_cast<uint32_t>(i), t);
      }
      rados_free_notify_response(acks, nAcks, timeouts);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("acks", Napi::Number::New(env, static_cast<double>(nAcks)));
    o.Set("timeouts", Napi::Number::New(env, static_cast<double>(nTimeouts)));
    o.Set("replies", replies);
    o.Set("timedOut", timedOut);
    return o;
  }
};

// objNotify(io, oid, payload, timeoutMs) -> {acks, timeouts, replies: [{notifierId, cookie, payload}], timedOut: [{notifierId, cookie}]}
Napi::Value ObjNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  std::string payload = BytesOf(env, info[2], "payload");
  uint64_t timeout = static_cast<uint64_t>(NumberArg(info, 3, "timeoutMs", 1, 3600e3));
  auto* op = new NotifyOp(env, info[0], wrapper, io, oid, "notify " + oid);
  op->payload = std::move(payload);
  if (!op->Prepare(env)) return AioOp::Failed(env, op);
  int r = rados_aio_notify(io, oid.c_str(), op->comp, op->payload.data(), op->payload.size(), timeout, &op->reply, &op->replyLen);
  return AioOp::Submitted(env, op, r);
}

// ---------------------------------------------------------------------------- locks (libuv pool)

// A synchronous librados call on the libuv pool (ceph::Async), the IoCtx counted as a user
// meanwhile. `work` returns >= 0 or -errno.
Napi::Value OnPool(const Napi::CallbackInfo& info, ceph::IoCtxRef ref, const std::string& what, std::function<int()> work,
                   std::function<Napi::Value(Napi::Env)> done = nullptr) {
  if (!done) done = [](Napi::Env e) -> Napi::Value { return e.Undefined(); };
  // The work holds the shared handle until it has run.
  return ceph::Async(info.Env(), what, [ref, work = std::move(work)]() { return work(); }, std::move(done));
}

// objLockExclusive(io, oid, name, cookie, description, durationMs, flags)
Napi::Value ObjLockExclusive(const Napi::CallbackInfo& info) {
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  std::string name = StringArg(info, 2, "name");
  std::string cookie = StringArg(info, 3, "cookie");
  std::string desc = StringArg(info, 4, "description");
  double ms = NumberArg(info, 5, "durationMs", 0, 365.0 * 86400e3);
  uint8_t flags = static_cast<uint8_t>(NumberArg(info, 6, "flags", 0, 3));
  return OnPool(info, wrapper, "lock " + name + " on " + oid, [=]() {
    struct timeval tv;
    tv.tv_sec = static_cast<time_t>(ms / 1000);
    tv.tv_usec = static_cast<suseconds_t>((static_cast<int64_t>(ms) % 1000) * 1000);
    return rados_lock_exclusive(io, oid.c_str(), name.c_str(), cookie.c_str(), desc.c_str(), ms > 0 ? &tv : nullptr, flags);
  });
}

// objUnlock(io, oid, name, cookie)
Napi::Value ObjUnlock(const Napi::CallbackInfo& info) {
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  std::string name = StringArg(info, 2, "name");
  std::string cookie = StringArg(info, 3, "cookie");
  return OnPool(info, wrapper, "unlock " + name + " on " + oid,
                [=]() { return rados_unlock(io, oid.c_str(), name.c_str(), cookie.c_str()); });
}

// objBreakLock(io, oid, name, client, cookie)
Napi::Value ObjBreakLock(const Napi::CallbackInfo& info) {
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  std::string name = StringArg(info, 2, "name");
  std::string client = StringArg(info, 3, "client");
  std::string cookie = StringArg(info, 4, "cookie");
  return OnPool(info, wrapper, "break lock " + name + " on " + oid,
                [=]() { return rados_break_lock(io, oid.c_str(), name.c_str(), client.c_str(), cookie.c_str()); });
}

struct Lockers {
  int exclusive = 0;
  std::vector<char> tag, clients, cookies, addrs;
  ssize_t count = 0;
};

std::vector<std::string> SplitNul(const std::vector<char>& b, ssize_t n) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (ssize_t i = 0; i < n && pos < b.size(); i++) {
    std::string s(b.data() + pos);
    pos += s.size() + 1;
    out.push_back(std::move(s));
  }
  return out;
}

// objListLockers(io, oid, name) -> {exclusive, tag, lockers: [{client, cookie, address}]}
Napi::Value ObjListLockers(const Napi::CallbackInfo& info) {
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  std::string name = StringArg(info, 2, "name");
  auto st = std::make_shared<Lockers>();
  return OnPool(
      info, wrapper, "list lockers of " + name + " on " + oid,
      [=]() {
        size_t sizes[4] = {256, 1024, 1024, 1024};
        for (int attempt = 0; attempt < 5; attempt++) {
          st->tag.assign(sizes[0], 0);
          st->clients.assign(sizes[1], 0);
          st->cookies.assign(sizes[2], 0);
          st->addrs.assign(sizes[3], 0);
          size_t tl = sizes[0], cl = sizes[1], kl = sizes[2], al = sizes[3];
          ssize_t r = rados_list_lockers(io, oid.c_str(), name.c_str(), &st->exclusive, st->tag.data(), &tl,
                                         st->clients.data(), &cl, st->cookies.data(), &kl, st->addrs.data(), &al);
          if (r != -ERANGE) {
            st->count = r;
            return r < 0 ? static_cast<int>(r) : 0;
          }
          sizes[0] = tl + 1;
          sizes[1] = cl + 1;
          sizes[2] = kl + 1;
          sizes[3] = al + 1;
        }
        return -ERANGE;
      },
      [st](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("exclusive", Napi::Boolean::New(e, st->exclusive != 0));
        o.Set("tag", Napi::String::New(e, st->tag.empty() ? "" : st->tag.data()));
        auto clients = SplitNul(st->clients, st->count);
        auto cookies = SplitNul(st->cookies, st->count);
        auto addrs = SplitNul(st->addrs, st->count);
        Napi::Array lockers = Napi::Array::New(e);
        for (size_t i = 0; i < clients.size(); i++) {
          Napi::Object l = Napi::Object::New(e);
          l.Set("client", clients[i]);
          l.Set("cookie", i < cookies.size() ? cookies[i] : "");
          l.Set("address", i < addrs.size() ? addrs[i] : "");
          lockers.Set(static_cast<uint32_t>(i), l);
        }
        o.Set("lockers", lockers);
        return o;
      });
}

// ---------------------------------------------------------------------------- watch

struct WatchEvent {
  bool error;
  int err;
  uint64_t notifierId;
  std::string payload;
  uint64_t notifyId;
};

struct Watch {
  rados_ioctx_t io = nullptr;
  ceph::IoCtxRef ref;  // keeps the IoCtx open until unwatched
  std::string oid;
  uint64_t cookie = 0;
  bool registered = false;
  bool released = false;   // objUnwatch called
  bool unwatched = false;  // unregistered and flushed: no callback can come any more
  bool manualAck = false;  // JS acks each notify itself (objNotifyAck)
};

void DeliverEvent(Napi::Env env, Napi::Function cb, Watch*, WatchEvent* ev) {
  std::unique_ptr<WatchEvent> owned(ev);
  if (env == nullptr) return;
  Napi::HandleScope scope(env);
  if (ev->error) {
    cb.Call({Napi::String::New(env, "error"), env.Undefined(), env.Undefined(), Napi::Number::New(env, ev->err)});
  } else {
    cb.Call({Napi::String::New(env, "notify"), Napi::Buffer<char>::Copy(env, ev->payload.data(), ev->payload.size()),
             Napi::BigInt::New(env, ev->notifierId), env.Undefined(), Napi::BigInt::New(env, ev->notifyId)});
  }
}

using WatchTsfn = Napi::TypedThreadSafeFunction<Watch, WatchEvent, DeliverEvent>;

struct WatchHolder {
  Watch* w;
  WatchTsfn tsfn;  // calls the JS callback; unref'd (a watch alone keeps no process alive)
};

void OnNotify(void* arg, uint64_t notifyId, uint64_t handle, uint64_t notifierId, void* data, size_t len) {
  auto* h = static_cast<WatchHolder*>(arg);
  // Ack first: the notifier waits for it, the JS side only re-reads. With manual acks the JS
  // side acks once it has acted (a notify it never acks times out at the notifier).
  if (!h->w->manualAck) rados_notify_ack(h->w->io, h->w->oid.c_str(), notifyId, handle, nullptr, 0);
  auto* ev = new WatchEvent{false, 0, notifierId, data && len ? std::string(static_cast<const char*>(data), len) : std::string(), notifyId};
  if (h->tsfn.NonBlockingCall(ev) != napi_ok) delete ev;
}

void OnWatchError(void* arg, uint64_t, int err) {
  auto* h = static_cast<WatchHolder*>(arg);
  auto* ev = new WatchEvent{true, err, 0, std::string(), 0};
  if (h->tsfn.NonBlockingCall(ev) != napi_ok) delete ev;
}

struct WatchOp : AioOp {
  WatchHolder* holder;
  using AioOp::AioOp;
  Napi::Value Result(Napi::Env env) override {
    holder->w->registered = true;
    // The handle owns the holder once unwatched; a handle dropped while still watching is
    // leaked on purpose (librados may still call into it).
    return Napi::External<WatchHolder>::New(env, holder, [](Napi::Env, WatchHolder* h) {
      if (h->w->unwatched) {
        delete h->w;
        delete h;
      }
    });
  }
  ~WatchOp() override {
    if (r < 0 && holder) {
      // Never registered: no callback can come.
      holder->tsfn.Release();
      delete holder->w;
      delete holder;
    }
  }
};

// objWatch(io, oid, callback(kind, payload, notifierId, err, notifyId), manualAck?) -> handle
Napi::Value ObjWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ceph::IoCtxRef wrapper;
  rados_ioctx_t io = IoOf(info, &wrapper);
  std::string oid = StringArg(info, 1, "oid");
  if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
  auto* w = new Watch();
  w->io = io;
  w->ref = wrapper;
  w->oid = oid;
  w->manualAck = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  auto* holder = new WatchHolder{w, WatchTsfn::New(env, info[2].As<Napi::Function>(), "rados-watch", 0, 1, w)};
  holder->tsfn.Unref(env);
  auto* op = new WatchOp(env, info[0], wrapper, io, oid, "watch " + oid);
  op->holder = holder;
  if (!op->Prepare(env)) {
    op->r = -EIO;
    return AioOp::Failed(env, op);
  }
  int r = rados_aio_watch(io, oid.c_str(), op->comp, &w->cookie, OnNotify, OnWatchError, holder);
  if (r < 0) op->r = r;
  return AioOp::Submitted(env, op, r);
}

WatchHolder* HolderOf(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "watch handle expected");
  return info[0].As<Napi::External<WatchHolder>>().Data();
}

// objWatchCheck(handle) -> ms since last confirmed, or negative errno
Napi::Value ObjWatchCheck(const Napi::CallbackInfo& info) {
  WatchHolder* h = HolderOf(info);
  if (h->w->released) return Napi::Number::New(info.Env(), -ENOTCONN);
  return Napi::Number::New(info.Env(), rados_watch_check(h->w->io, h->w->cookie));
}

// objNotifyAck(handle, notifyId, reply): ack a notify of a manual-ack watch (queued, not waited
// for) -> 0 or a negative errno.
Napi::Value ObjNotifyAck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WatchHolder* h = HolderOf(info);
  if (info.Length() < 2 || !info[1].IsBigInt()) throw Napi::TypeError::New(env, "notifyId must be a bigint");
  bool lossless = false;
  uint64_t notifyId = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  std::string reply = info.Length() > 2 && !info[2].IsUndefined() ? BytesOf(env, info[2], "reply") : std::string();
  if (reply.size() > 65536) throw Napi::RangeError::New(env, "reply is larger than 64 KiB");
  if (h->w->released) return Napi::Number::New(env, -ENOTCONN);
  int r = rados_notify_ack(h->w->io, h->w->oid.c_str(), notifyId, h->w->cookie, reply.empty() ? nullptr : reply.data(),
                           static_cast<int>(reply.size()));
  return Napi::Number::New(env, r);
}

// objUnwatch(handle): unregister, then flush so that no callback of it runs afterwards.
Napi::Value ObjUnwatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WatchHolder* h = HolderOf(info);
  if (h->w->released) throw Napi::Error::New(env, "watch already closed");
  h->w->released = true;
  rados_ioctx_t io = h->w->io;
  uint64_t cookie = h->w->cookie;
  return ceph::Async(
      env, "unwatch " + h->w->oid,
      [=]() {
        int r = rados_unwatch2(io, cookie);
        rados_watch_flush(rados_ioctx_get_cluster(io));
        return r;
      },
      [](Napi::Env e) -> Napi::Value { return e.Undefined(); }, Napi::Object(),
      [h]() {
        // Either way no callback of this watch is in flight any more (flushed): let go.
        h->tsfn.Release();
        h->w->ref.reset();
        h->w->unwatched = true;
      });
}

}  // namespace

namespace ceph {

void InitObject(Napi::Env env, Napi::Object exports) {
  exports.Set("objRead", Napi::Function::New(env, ObjRead, "objRead"));
  exports.Set("objStat", Napi::Function::New(env, ObjStat, "objStat"));
  exports.Set("objGetXattr", Napi::Function::New(env, ObjGetXattr, "objGetXattr"));
  exports.Set("objOmapGet", Napi::Function::New(env, ObjOmapGet, "objOmapGet"));
  exports.Set("objOperate", Napi::Function::New(env, ObjOperate, "objOperate"));
  exports.Set("objNotify", Napi::Function::New(env, ObjNotify, "objNotify"));
  exports.Set("objLockExclusive", Napi::Function::New(env, ObjLockExclusive, "objLockExclusive"));
  exports.Set("objUnlock", Napi::Function::New(env, ObjUnlock, "objUnlock"));
  exports.Set("objBreakLock", Napi::Function::New(env, ObjBreakLock, "objBreakLock"));
  exports.Set("objListLockers", Napi::Function::New(env, ObjListLockers, "objListLockers"));
  exports.Set("objWatch", Napi::Function::New(env, ObjWatch, "objWatch"));
  exports.Set("objNotifyAck", Napi::Function::New(env, ObjNotifyAck, "objNotifyAck"));
  exports.Set("objWatchCheck", Napi::Function::New(env, ObjWatchCheck, "objWatchCheck"));
  exports.Set("objUnwatch", Napi::Function::New(env, ObjUnwatch, "objUnwatch"));
}

}  // namespace ceph
