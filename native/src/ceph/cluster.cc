/*
 * Cluster (rados_t) and IoCtx (rados_ioctx_t).
 *
 *   new Cluster(clusterName, clientName)     rados_create2 (memory only, no I/O)
 *   cluster.confSet(key, value)              before connect: applied after the conf file is read,
 *                                            so it wins over the file (timeouts); after: runtime set
 *   cluster.confGet(key)                     -> string
 *   cluster.connect(confFile | null)         -> Promise<void>   read conf (null: CEPH_CONF/defaults),
 *                                                                CEPH_ARGS, overrides, rados_connect
 *   cluster.monCommand(json, input?)         -> Promise<{ status, output: Buffer }>
 *   cluster.blocklistAdd(addr, seconds)      -> Promise<void>
 *   cluster.instanceId() / addrs() / fsid()  -> number / string / string
 *   cluster.poolList()                       -> Promise<string[]>
 *   cluster.openIoCtx(pool)                  -> Promise<IoCtx>
 *   cluster.shutdown()                       -> Promise<void>   EBUSY while IoCtxs/images are open
 *   ioctx.close(), setNamespace(ns), getNamespace(), poolName(), poolId()
 */
#include <errno.h>
#include <string.h>

#include <utility>
#include <vector>

#include "ceph.h"

namespace ceph {

// ---------------------------------------------------------------- Cluster

void Cluster::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(env, "Cluster",
                                 {
                                     InstanceMethod<&Cluster::ConfSet>("confSet"),
                                     InstanceMethod<&Cluster::ConfGet>("confGet"),
                                     InstanceMethod<&Cluster::Connect>("connect"),
                                     InstanceMethod<&Cluster::Shutdown>("shutdown"),
                                     InstanceMethod<&Cluster::MonCommand>("monCommand"),
                                     InstanceMethod<&Cluster::BlocklistAdd>("blocklistAdd"),
                                     InstanceMethod<&Cluster::InstanceId>("instanceId"),
                                     InstanceMethod<&Cluster::Addrs>("addrs"),
                                     InstanceMethod<&Cluster::Fsid>("fsid"),
                                     InstanceMethod<&Cluster::PoolList>("poolList"),
                                     InstanceMethod<&Cluster::OpenIoCtx>("openIoCtx"),
                                     InstanceMethod<&Cluster::IsConnected>("isConnected"),
                                 });
  SetConstructor(env, "Cluster", f);
  exports.Set("Cluster", f);
}

Cluster *Cluster::From(Napi::Env env, Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Constructor(env, "Cluster")))
    throw Napi::TypeError::New(env, "expected a Cluster");
  return Unwrap(v.As<Napi::Object>());
}

Cluster::Cluster(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Cluster>(info) {
  Napi::Env env = info.Env();
  std::string clusterName = info[0].IsUndefined() ? "ceph" : ArgString(info, 0, "clusterName");
  std::string clientName = info[1].IsUndefined() ? "client.admin" : ArgString(info, 1, "clientName");
  if (clientName.find('.') == std::string::npos) clientName = "client." + clientName;
  // rados_create2 builds the CephContext in memory; it does not touch the network.
  rados_t c = nullptr;
  int r = rados_create2(&c, clusterName.c_str(), clientName.c_str(), 0);
  if (r < 0) ThrowErrno(env, r, "rados_create2");
  h_ = std::make_shared<RadosHandle>();
  h_->cluster = c;
}

RadosRef Cluster::Ref(Napi::Env env) const {
  if (state_ != State::Connected) ThrowErrno(env, -ENOTCONN, "cluster not connected");
  return h_;
}

Napi::Value Cluster::ConfSet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string key = ArgString(info, 0, "key");
  std::string value = ArgString(info, 1, "value");
  if (state_ == State::Shutdown || state_ == State::ShuttingDown) ThrowErrno(env, -ENOTCONN, "rados_conf_set");
  if (state_ == State::Connecting) ThrowErrno(env, -EBUSY, "rados_conf_set");
  // Before connect the conf file is not read yet; setting now validates the key and value, and
  // connect re-applies the pair after reading the file so it wins.
  int r = rados_conf_set(h_->cluster, key.c_str(), value.c_str());
  if (r < 0) ThrowErrno(env, r, "rados_conf_set " + key);
  if (state_ == State::New || state_ == State::Failed) pendingConf_.emplace_back(key, value);
  return env.Undefined();
}

Napi::Value Cluster::ConfGet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string key = ArgString(info, 0, "key");
  if (state_ == State::Shutdown || state_ == State::ShuttingDown) ThrowErrno(env, -ENOTCONN, "rados_conf_get");
  std::vector<char> buf(4096);
  int r = rados_conf_get(h_->cluster, key.c_str(), buf.data(), buf.size());
  if (r == -ENAMETOOLONG) {
    buf.resize(1 << 16);
    r = rados_conf_get(h_->cluster, key.c_str(), buf.data(), buf.size());
  }
  if (r < 0) ThrowErrno(env, r, "rados_conf_get " + key);
  return Napi::String::New(env, buf.data());
}

Napi::Value Cluster::Connect(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bool haveFile = !info[0].IsUndefined() && !info[0].IsNull();
  std::string confFile = haveFile ? ArgString(info, 0, "confFile") : "";
  if (state_ != State::New && state_ != State::Failed) ThrowErrno(env, -EISCONN, "rados_connect");
  auto pending = pendingConf_;
  state_ = State::Connecting;
  RadosRef h = h_;
  // Which step failed goes into the error: a missing conf file reads differently from a refused connect.
  auto step = std::make_shared<int>(0);
  auto r = std::make_shared<int>(0);
  return Async(
      env, "rados_connect",
      [h, haveFile, confFile, pending, step, r]() -> int {
        rados_t c = h->cluster;
        *r = rados_conf_read_file(c, haveFile ? confFile.c_str() : nullptr);
        if (*r < 0) return 0;
        *step = 1;
        *r = rados_conf_parse_env(c, nullptr);  // CEPH_ARGS
        if (*r < 0) return 0;
        *step = 2;
        for (const auto &kv : pending) {
          *r = rados_conf_set(c, kv.first.c_str(), kv.second.c_str());
          if (*r < 0) return 0;
        }
        *step = 3;
        *r = rados_connect(c);
        return 0;
      },
      [this, step, r, confFile, haveFile](Napi::Env env) -> Napi::Value {
        if (*r < 0) {
          static const char *steps[] = {"rados_conf_read_file", "rados_conf_parse_env", "rados_conf_set", "rados_connect"};
          std::string what = steps[*step];
          if (*step == 0) what += " " + (haveFile ? confFile : std::string("(CEPH_CONF or default search path)"));
          throw ErrnoError(env, *r, what);
        }
        state_ = State::Connected;
        pendingConf_.clear();
        return env.Undefined();
      },
      Value(),
      [this]() {
        if (state_ == State::Connecting) state_ = State::Failed;
      });
}

Napi::Value Cluster::Shutdown(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (state_ == State::Shutdown || state_ == State::ShuttingDown) ThrowErrno(env, -ENOTCONN, "rados_shutdown");
  if (state_ == State::Connecting) ThrowErrno(env, -EBUSY, "rados_shutdown (connect in progress)");
  if (h_.use_count() > 1)
    ThrowErrno(env, -EBUSY, "rados_shutdown (pool contexts, images or operations still use the cluster)");
  state_ = State::ShuttingDown;
  RadosRef h = std::move(h_);
  return Async(
      env, "rados_shutdown",
      [h]() -> int {
        if (!h->shut) rados_shutdown(h->cluster);
        h->shut = true;
        return 0;
      },
      [this](Napi::Env env) -> Napi::Value {
        state_ = State::Shutdown;
        return env.Undefined();
      },
      Value());
}

Napi::Value Cluster::MonCommand(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string cmd = ArgString(info, 0, "command");
  std::string input;
  if (!info[1].IsUndefined() && !info[1].IsNull()) {
    Napi::Buffer<char> b = ArgBuffer(info, 1, "input");
    input.assign(b.Data(), b.Length());  // small control-plane payload; copied once
  }
  RadosRef h = Ref(env);
  struct Out {
    int r = 0;
    std::string outbuf, outs;
  };
  auto out = std::make_shared<Out>();
  return Async(
      env, "rados_mon_command",
      [h, cmd, input, out]() -> int {
        const char *cmds[1] = {cmd.c_str()};
        char *ob = nullptr, *os = nullptr;
        size_t obl = 0, osl = 0;
        out->r = rados_mon_command(h->cluster, cmds, 1, input.data(), input.size(), &ob, &obl, &os, &osl);
        if (ob != nullptr) out->outbuf.assign(ob, obl);
        if (os != nullptr) out->outs.assign(os, osl);
        if (ob != nullptr) rados_buffer_free(ob);
        if (os != nullptr) rados_buffer_free(os);
        return 0;  // settled in `done`, which adds the mon's status text to errors
      },
      [out](Napi::Env env) -> Napi::Value {
        if (out->r < 0) {
          Napi::Error e = ErrnoError(env, out->r, "mon_command" + (out->outs.empty() ? "" : ": " + out->outs));
          e.Set("status", Napi::String::New(env, out->outs));
          throw e;
        }
        Napi::Object o = Napi::Object::New(env);
        o.Set("status", Napi::String::New(env, out->outs));
        o.Set("output", Napi::Buffer<char>::Copy(env, out->outbuf.data(), out->outbuf.size()));
        return o;
      },
      Value());
}

Napi::Value Cluster::BlocklistAdd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string addr = ArgString(info, 0, "address");
  uint64_t expire = info[1].IsUndefined() ? 0 : ArgU64(info, 1, "expireSeconds");
  if (expire > UINT32_MAX) throw Napi::RangeError::New(env, "expireSeconds too large");
  RadosRef h = Ref(env);
  return Async(
      env, "rados_blocklist_add",
      [h, addr, expire]() -> int {
        std::vector<char> a(addr.begin(), addr.end());
        a.push_back('\0');
        return rados_blocklist_add(h->cluster, a.data(), static_cast<uint32_t>(expire));
      },
      nullptr, Value());
}

Napi::Value Cluster::InstanceId(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, static_cast<double>(rados_get_instance_id(Ref(env)->cluster)));
}

Napi::Value Cluster::Addrs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  char *addrs = nullptr;
  int r = rados_getaddrs(Ref(env)->cluster, &addrs);
  if (r < 0) ThrowErrno(env, r, "rados_getaddrs");
  std::string s = addrs != nullptr ? addrs : "";
  if (addrs != nullptr) rados_buffer_free(addrs);
  return Napi::String::New(env, s);
}

Napi::Value Cluster::Fsid(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  char buf[64];
  int r = rados_cluster_fsid(Ref(env)->cluster, buf, sizeof buf);
  if (r < 0) ThrowErrno(env, r, "rados_cluster_fsid");
  return Napi::String::New(env, buf, static_cast<size_t>(r));
}

Napi::Value Cluster::PoolList(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RadosRef h = Ref(env);
  auto names = std::make_shared<std::vector<std::string>>();
  return Async(
      env, "rados_pool_list",
      [h, names]() -> int {
        std::vector<char> buf(4096);
        int r = 0;
        for (int tries = 0; tries < 8; tries++) {
          r = rados_pool_list(h->cluster, buf.data(), buf.size());
          if (r < 0) return r;
          if (static_cast<size_t>(r) <= buf.size()) break;
          buf.resize(static_cast<size_t>(r));
        }
        for (const char *p = buf.data(); p < buf.data() + buf.size() && *p != '\0'; p += strlen(p) + 1) names->push_back(p);
        return 0;
      },
      [names](Napi::Env env) -> Napi::Value {
        Napi::Array a = Napi::Array::New(env, names->size());
        for (size_t i = 0; i < names->size(); i++) a.Set(i, (*names)[i]);
        return a;
      },
      Value());
}

Napi::Value Cluster::OpenIoCtx(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string pool = ArgString(info, 0, "pool");
  auto io = std::make_shared<IoCtxHandle>();
  io->cluster = Ref(env);
  return Async(
      env, "rados_ioctx_create " + pool,
      [io, pool]() -> int { return rados_ioctx_create(io->cluster->cluster, pool.c_str(), &io->io); },
      [io, pool](Napi::Env env) -> Napi::Value { return IoCtx::NewInstance(env, io, pool); }, Value());
}

Napi::Value Cluster::IsConnected(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), state_ == State::Connected);
}

// ---------------------------------------------------------------- IoCtx

void IoCtx::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(env, "IoCtx",
                                 {
                                     InstanceMethod<&IoCtx::Close>("close"),
                                     InstanceMethod<&IoCtx::SetNamespace>("setNamespace"),
                                     InstanceMethod<&IoCtx::GetNamespace>("getNamespace"),
                                     InstanceMethod<&IoCtx::PoolName>("poolName"),
                                     InstanceMethod<&IoCtx::PoolId>("poolId"),
                                 });
  SetConstructor(env, "IoCtx", f);
  exports.Set("IoCtx", f);
}

Napi::Object IoCtx::NewInstance(Napi::Env env, IoCtxRef h, const std::string &pool) {
  // The handle travels through an External holding a heap copy of the shared_ptr.
  auto *box = new IoCtxRef(std::move(h));
  Napi::Object o;
  try {
    o = Constructor(env, "IoCtx").New({Napi::External<IoCtxRef>::New(env, box), Napi::String::New(env, pool)});
  } catch (...) {
    delete box;
    throw;
  }
  delete box;
  return o;
}

IoCtx *IoCtx::From(Napi::Env env, Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Constructor(env, "IoCtx")))
    throw Napi::TypeError::New(env, "expected an IoCtx");
  return Unwrap(v.As<Napi::Object>());
}

IoCtx::IoCtx(const Napi::CallbackInfo &info) : Napi::ObjectWrap<IoCtx>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsExternal() || !info[1].IsString())
    throw Napi::TypeError::New(env, "IoCtx is created by Cluster.openIoCtx()");
  h_ = *info[0].As<Napi::External<IoCtxRef>>().Data();
  pool_ = info[1].As<Napi::String>().Utf8Value();
}

IoCtxRef IoCtx::Ref(Napi::Env env) const {
  if (!h_) ThrowErrno(env, -EBADF, "ioctx " + pool_ + " is closed");
  return h_;
}

Napi::Value IoCtx::Close(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  // Drops this wrapper's reference; work still in flight keeps its own until it settles.
  h_.reset();
  return env.Undefined();
}

Napi::Value IoCtx::SetNamespace(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string ns = ArgString(info, 0, "namespace");
  rados_ioctx_set_namespace(Ref(env)->io, ns.c_str());
  namespace_ = ns;
  return env.Undefined();
}

Napi::Value IoCtx::GetNamespace(const Napi::CallbackInfo &info) { return Napi::String::New(info.Env(), namespace_); }

Napi::Value IoCtx::PoolName(const Napi::CallbackInfo &info) { return Napi::String::New(info.Env(), pool_); }

Napi::Value IoCtx::PoolId(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, static_cast<double>(rados_ioctx_get_id(Ref(env)->io)));
}

void InitCluster(Napi::Env env, Napi::Object exports) {
  Cluster::Init(env, exports);
  IoCtx::Init(env, exports);
}

}  // namespace ceph
