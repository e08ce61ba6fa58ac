/*
 * Image administration by name, on a pool context (all on libuv's pool):
 *   rbdCreate(ioctx, name, size, opts)   rbd_create4 (features, order, stripe unit/count, data pool)
 *   rbdRemove(ioctx, name)               rbd_remove
 *   rbdList(ioctx)                       rbd_list2 -> [{ id, name }]
 *   rbdRename(ioctx, from, to)           rbd_rename
 *   rbdClone(pio, parent, snap, cio, child, opts)   rbd_clone3 (clone v2 with min compat >= mimic)
 *   featuresFromString / featuresToString           (local)
 */
#include <errno.h>

#include <rbd/librbd.h>
#include <vector>

#include "ceph.h"

namespace ceph {

namespace {

/** rbd_image_options_t built on the JS thread from { features, order, stripeUnit, stripeCount, dataPool }. */
struct Options {
  rbd_image_options_t opts = nullptr;
  Options() { rbd_image_options_create(&opts); }
  ~Options() { rbd_image_options_destroy(opts); }
  Options(const Options &) = delete;
  Options &operator=(const Options &) = delete;
};

std::shared_ptr<Options> ParseOptions(Napi::Env env, Napi::Value v) {
  auto o = std::make_shared<Options>();
  if (v.IsUndefined() || v.IsNull()) return o;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object obj = v.As<Napi::Object>();
  struct U {
    const char *key;
    int opt;
  };
  const U nums[] = {{"features", RBD_IMAGE_OPTION_FEATURES},
                    {"order", RBD_IMAGE_OPTION_ORDER},
                    {"stripeUnit", RBD_IMAGE_OPTION_STRIPE_UNIT},
                    {"stripeCount", RBD_IMAGE_OPTION_STRIPE_COUNT}};
  for (const U &u : nums) {
    Napi::Value x = obj.Get(u.key);
    if (x.IsUndefined()) continue;
    if (!x.IsNumber() || x.As<Napi::Number>().DoubleValue() < 0)
      throw Napi::TypeError::New(env, std::string(u.key) + " must be a non-negative integer");
    int r = rbd_image_options_set_uint64(o->opts, u.opt, static_cast<uint64_t>(x.As<Napi::Number>().DoubleValue()));
    if (r < 0) ThrowErrno(env, r, std::string("image option ") + u.key);
  }
  Napi::Value dp = obj.Get("dataPool");
  if (dp.IsString()) {
    int r = rbd_image_options_set_string(o->opts, RBD_IMAGE_OPTION_DATA_POOL, dp.As<Napi::String>().Utf8Value().c_str());
    if (r < 0) ThrowErrno(env, r, "image option dataPool");
  } else if (!dp.IsUndefined()) {
    throw Napi::TypeError::New(env, "dataPool must be a string");
  }
  return o;
}

Napi::Value Create(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  IoCtx *io = IoCtx::From(env, info[0]);
  std::string name = ArgString(info, 1, "name");
  uint64_t size = ArgU64(info, 2, "size");
  auto opts = ParseOptions(env, info[3]);
  IoCtxRef h = io->Ref(env);
  return Async(
      env, "rbd_create " + io->Pool() + "/" + name, [h, name, size, opts]() { return rbd_create4(h->io, name.c_str(), size, opts->opts); },
      nullptr, info[0].As<Napi::Object>());
}

Napi::Value Remove(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  IoCtx *io = IoCtx::From(env, info[0]);
  std::string name = ArgString(info, 1, "name");
  IoCtxRef h = io->Ref(env);
  return Async(env, "rbd_remove " + io->Pool() + "/" + name, [h, name]() { return rbd_remove(h->io, name.c_str()); }, nullptr,
               info[0].As<Napi::Object>());
}

Napi::Value Rename(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  IoCtx *io = IoCtx::From(env, info[0]);
  std::string from = ArgString(info, 1, "from");
  std::string to = ArgString(info, 2, "to");
  IoCtxRef h = io->Ref(env);
  return Async(env, "rbd_rename " + io->Pool() + "/" + from, [h, from, to]() { return rbd_rename(h->io, from.c_str(), to.c_str()); },
               nullptr, info[0].As<Napi::Object>());
}

Napi::Value List(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  IoCtx *io = IoCtx::From(env, info[0]);
  IoCtxRef h = io->Ref(env);
  auto out = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
  return Async(
      env, "rbd_list2 " + io->Pool(),
      [h, out]() -> int {
        std::vector<rbd_image_spec_t> v(64);
        size_t max = v.size();
        int r = 0;
        for (int tries = 0; tries < 8; tries++) {
          max = v.size();
          r = rbd_list2(h->io, v.data(), &max);
          if (r != -ERANGE) break;
          v.resize(max);
        }
        if (r < 0) return r;
        for (size_t i = 0; i < max; i++) out->emplace_back(v[i].id ? v[i].id : "", v[i].name ? v[i].name : "");
        rbd_image_spec_list_cleanup(v.data(), max);
        return 0;
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array a = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", (*out)[i].first);
          o.Set("name", (*out)[i].second);
          a.Set(i, o);
        }
        return a;
      },
      info[0].As<Napi::Object>());
}

Napi::Value Clone(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  IoCtx *pio = IoCtx::From(env, info[0]);
  std::string parent = ArgString(info, 1, "parent");
  std::string snap = ArgString(info, 2, "snapshot");
  IoCtx *cio = IoCtx::From(env, info[3]);
  std::string child = ArgString(info, 4, "child");
  auto opts = ParseOptions(env, info[5]);
  IoCtxRef ph = pio->Ref(env), ch = cio->Ref(env);
  return Async(
      env, "rbd_clone " + pio->Pool() + "/" + parent + "@" + snap + " -> " + cio->Pool() + "/" + child,
      [ph, ch, parent, snap, child, opts]() { return rbd_clone3(ph->io, parent.c_str(), snap.c_str(), ch->io, child.c_str(), opts->opts); },
      nullptr, info[0].As<Napi::Object>());
}

Napi::Value FeaturesFromString(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string s = ArgString(info, 0, "names");
  uint64_t f = 0;
  int r = rbd_features_from_string(s.c_str(), &f);
  if (r < 0) ThrowErrno(env, r, "rbd_features_from_string '" + s + "'");
  return Napi::Number::New(env, static_cast<double>(f));
}

Napi::Value FeaturesToString(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t f = ArgU64(info, 0, "mask");
  std::vector<char> buf(512);
  size_t len = buf.size();
  int r = rbd_features_to_string(f, buf.data(), &len);
  if (r == -ERANGE) {
    buf.resize(len);
    r = rbd_features_to_string(f, buf.data(), &len);
  }
  if (r < 0) ThrowErrno(env, r, "rbd_features_to_string");
  return Napi::String::New(env, buf.data());
}

}  // namespace

void InitRbdAdmin(Napi::Env env, Napi::Object exports) {
  exports.Set("rbdCreate", Napi::Function::New(env, Create, "rbdCreate"));
  exports.Set("rbdRemove", Napi::Function::New(env, Remove, "rbdRemove"));
  exports.Set("rbdRename", Napi::Function::New(env, Rename, "rbdRename"));
  exports.Set("rbdList", Napi::Function::New(env, List, "rbdList"));
  exports.Set("rbdClone", Napi::Function::New(env, Clone, "rbdClone"));
  exports.Set("featuresFromString", Napi::Function::New(env, FeaturesFromString, "featuresFromString"));
  exports.Set("featuresToString", Napi::Function::New(env, FeaturesToString, "featuresToString"));
}

}  // namespace ceph
