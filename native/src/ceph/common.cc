/*
 * Helpers shared by the addon's files: errno errors, argument checks, Async (libuv pool work
 * settling a Promise).
 */
#include <string.h>

#include <cstdint>
#include <map>

#include "ceph.h"

namespace ceph {

Napi::Error ErrnoError(Napi::Env env, int r, const std::string &op) {
  int e = r < 0 ? -r : r;
  const char *name = strerrorname_np(e);
  char buf[128];
  const char *text = strerror_r(e, buf, sizeof buf);
  Napi::Error err = Napi::Error::New(env, op + ": " + text + " (" + (name ? name : "errno " + std::to_string(e)) + ")");
  err.Set("errno", Napi::Number::New(env, e));
  err.Set("code", Napi::String::New(env, name ? name : "E" + std::to_string(e)));
  err.Set("syscall", Napi::String::New(env, op));
  return err;
}

void ThrowErrno(Napi::Env env, int r, const std::string &op) { throw ErrnoError(env, r, op); }

static void TypeErr(Napi::Env env, const char *name, const char *what) {
  throw Napi::TypeError::New(env, std::string(name) + " must be " + what);
}

std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (!info[i].IsString()) TypeErr(info.Env(), name, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

uint64_t ArgU64(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (!info[i].IsNumber()) TypeErr(info.Env(), name, "a non-negative integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  // 2^53: every offset/size the JS side can express exactly.
  if (!(d >= 0) || d > 9007199254740992.0 || d != static_cast<double>(static_cast<uint64_t>(d)))
    TypeErr(info.Env(), name, "a non-negative integer");
  return static_cast<uint64_t>(d);
}

bool ArgBool(const Napi::CallbackInfo &info, size_t i, const char *name, bool dflt) {
  if (info[i].IsUndefined()) return dflt;
  if (!info[i].IsBoolean()) TypeErr(info.Env(), name, "a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

Napi::Buffer<char> ArgBuffer(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (!info[i].IsBuffer()) TypeErr(info.Env(), name, "a Buffer");
  return info[i].As<Napi::Buffer<char>>();
}

namespace {

struct AddonData {
  std::map<std::string, Napi::FunctionReference> ctors;
};

AddonData *Data(Napi::Env env) {
  AddonData *d = env.GetInstanceData<AddonData>();
  if (d == nullptr) {
    d = new AddonData();
    env.SetInstanceData(d);  // deleted with the environment
  }
  return d;
}

}  // namespace

void SetConstructor(Napi::Env env, const std::string &name, Napi::Function ctor) {
  Data(env)->ctors[name] = Napi::Persistent(ctor);
}

Napi::Function Constructor(Napi::Env env, const std::string &name) {
  auto &m = Data(env)->ctors;
  auto it = m.find(name);
  if (it == m.end()) throw Napi::Error::New(env, "internal: no constructor " + name);
  return it->second.Value();
}

namespace {

class Worker : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, const std::string &op, std::function<int()> work, std::function<Napi::Value(Napi::Env)> done,
         Napi::Object keep, std::function<void()> settled)
      : Napi::AsyncWorker(env, op.c_str()),
        deferred_(Napi::Promise::Deferred::New(env)),
        op_(op),
        work_(std::move(work)),
        done_(std::move(done)),
        settled_(std::move(settled)) {
    if (!keep.IsEmpty()) keep_ = Napi::Persistent(keep);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { r_ = work_(); }
  void OnOK() override {
    Napi::Env env = Env();
    if (settled_) settled_();
    if (r_ < 0) {
      deferred_.Reject(ErrnoError(env, r_, op_).Value());
      return;
    }
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error &e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error &e) override {
    if (settled_) settled_();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string op_;
  std::function<int()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::function<void()> settled_;
  Napi::ObjectReference keep_;
  int r_ = 0;
};

}  // namespace

Napi::Promise Async(Napi::Env env, const std::string &op, std::function<int()> work,
                    std::function<Napi::Value(Napi::Env)> done, Napi::Object keep, std::function<void()> settled) {
  auto *w = new Worker(env, op, std::move(work), std::move(done), keep, std::move(settled));
  Napi::Promise p = w->Promise();
  w->Queue();  // deletes itself after OnOK/OnError
  return p;
}

}  // namespace ceph
