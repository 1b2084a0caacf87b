// Eight-lane vectors for the ensemble kernels (GCC vector extensions: one AVX-512
// register, two AVX2 or four SSE2 ones) and the exact IEEE definitions of min / max / fabs /
// copysign on them, so that a member batched in a chunk of eight gets the bits of its single
// run. Private to the transport engine (transport_advection.cpp, transport_implicit.cpp).
#pragma once

#include <cstddef>

namespace qingshui::transport::engine {

// The helpers are always inlined, so their by-value vector ABI never shows; the warning
// about it (-Wpsabi: "the ABI of passing a 64-byte vector changes with AVX-512") is silenced
// for this header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double V8 __attribute__((vector_size(64)));
typedef double V8u __attribute__((vector_size(64), aligned(8), may_alias));
typedef long long I8 __attribute__((vector_size(64)));

#define QS_INLINE __attribute__((always_inline)) inline
QS_INLINE V8 Load8(const double* p) { return *reinterpret_cast<const V8u*>(p); }
QS_INLINE void Store8(double* p, V8 v) { *reinterpret_cast<V8u*>(p) = v; }
QS_INLINE V8 Splat8(double x) { return V8{x, x, x, x, x, x, x, x}; }
QS_INLINE V8 Min8(V8 a, V8 b) { return b < a ? b : a; }  // std::min(a, b)
QS_INLINE V8 Max8(V8 a, V8 b) { return a < b ? b : a; }  // std::max(a, b)
QS_INLINE V8 Abs8(V8 a) {
  return reinterpret_cast<V8>(reinterpret_cast<I8>(a) & 0x7fffffffffffffffLL);
}
QS_INLINE V8 CopySign8(V8 mag, V8 sgn) {
  return reinterpret_cast<V8>((reinterpret_cast<I8>(mag) & 0x7fffffffffffffffLL) |
                              (reinterpret_cast<I8>(sgn) & static_cast<long long>(0x8000000000000000ULL)));
}
QS_INLINE double HMax8(V8 t) {
#ifdef __clang__
  t = Max8(t, __builtin_shufflevector(t, t, 4, 5, 6, 7, 0, 1, 2, 3));
  t = Max8(t, __builtin_shufflevector(t, t, 2, 3, 0, 1, 6, 7, 4, 5));
  t = Max8(t, __builtin_shufflevector(t, t, 1, 0, 3, 2, 5, 4, 7, 6));
#else
  t = Max8(t, __builtin_shuffle(t, I8{4, 5, 6, 7, 0, 1, 2, 3}));
  t = Max8(t, __builtin_shuffle(t, I8{2, 3, 0, 1, 6, 7, 4, 5}));
  t = Max8(t, __builtin_shuffle(t, I8{1, 0, 3, 2, 5, 4, 7, 6}));
#endif
  return t[0];
}
#pragma GCC diagnostic pop

}  // namespace qingshui::transport::engine

// The same warning is given where the helpers are called, inlined or not, and for template
// code at the end of the translation unit, where templates are instantiated: a file that
// uses the 8-lane vectors says QS_SIMD8_CODE_FOLLOWS before its first use, which silences
// it from there to the end of that file (transport_advection.cpp, transport_implicit.cpp;
// no other file of the engine).
#define QS_SIMD8_CODE_FOLLOWS _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
