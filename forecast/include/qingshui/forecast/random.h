// Random streams for the ensemble. Every member (and every hydraulic group) draws from its
// own stream, keyed by (seed, purpose, index), so that a member's numbers do not depend on
// which thread runs it, in which order, or on how many members there are before it. The
// generator is xoshiro256** (Blackman & Vigna 2018) seeded through SplitMix64 (Steele,
// Lea & Flood 2014); normals by Box-Muller. Both are written out here, not taken from
// <random>, whose distributions differ between standard libraries.
#pragma once

#include <cmath>
#include <cstdint>

namespace qingshui::forecast {

// What a stream is for; part of its key, so that streams never overlap by accident.
enum class StreamPurpose : std::uint64_t {
  kMember = 1,      // a member's loads, headwater concentrations, analysis sample
  kGroup = 2,       // a hydraulic group's flows, rates, rain, temperature
  kTruth = 3,       // a twin experiment's synthetic truth
  kObservation = 4  // a twin experiment's observation noise
};

class RandomStream {
 public:
  RandomStream(std::uint64_t seed, StreamPurpose purpose, std::uint64_t index) {
    std::uint64_t x = seed ^ (static_cast<std::uint64_t>(purpose) * 0xD1B54A32D192ED03ull) ^
                      (index * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull);
    for (auto& s : s_) s = SplitMix64(&x);
  }

  std::uint64_t Next() {
    const std::uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform on (0, 1): 53 random bits, never exactly 0 or 1.
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }

  // Standard normal (Box-Muller; the second value of a pair is kept for the next call).
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = Uniform(), u2 = Uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 6.283185307179586 * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

  // Log-normal factor with mean 1: exp(sigma z − sigma²/2), z standard normal.
  double MeanOneLogNormal(double sigma) { return std::exp(sigma * Normal() - 0.5 * sigma * sigma); }

  // Exponential with the given mean.
  double Exponential(double mean) { return -mean * std::log(Uniform()); }

 private:
  static std::uint64_t SplitMix64(std::uint64_t* x) {
    std::uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  static std::uint64_t Rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  std::uint64_t s_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace qingshui::forecast
