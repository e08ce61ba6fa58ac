/*
 * Module entry of iscsi_gateway_ceph: calls each source file's init function (see ceph.h).
 */
#include <rados/librados.h>
#include <rbd/librbd.h>

#include "ceph.h"

namespace {

Napi::Value Versions(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int major = 0, minor = 0, extra = 0;
  Napi::Object out = Napi::Object::New(env);
  rados_version(&major, &minor, &extra);
  out.Set("rados", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(extra));
  rbd_version(&major, &minor, &extra);
  out.Set("rbd", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(extra));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("versions", Napi::Function::New(env, Versions, "versions"));
  ceph::InitCluster(env, exports);
  ceph::InitRbdImage(env, exports);
  ceph::InitRbdAdmin(env, exports);
  // Hook for branch rados-config (object.cc): present only when that file is compiled in.
  if (&ceph::InitObject != nullptr) ceph::InitObject(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(iscsi_gateway_ceph, Init)
