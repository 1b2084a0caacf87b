// Transport engine, the steady state (OTIS TFINAL = 0, and initial states): defect
// correction of the limited face values on the upwind M-matrix of the tree
// (docs/methods.md section 2, "Steady state").
#include "transport_engine.h"

namespace qingshui::transport::engine {

// Steady state: d/dt = 0 with the storage zone and sorbate in equilibrium. The limited
// second-order face values make the system nonlinear; it is solved by defect correction
// (upwind system implicit, limited correction and reaction coupling lagged), which
// converges in a few tens of tree solves (docs/methods.md).
void Engine::SolveSteady(TransportResult* r) {
  Hydraulics h;
  ComputeHydraulics(FlowAt(p_.start_time_s), &h);
  const double t0 = p_.start_time_s;
  std::vector<double> diag(N_), lo(N_), upc(N_), piv(N_), rhs(N_), x(N_), delta(N_), acc(N_);
  std::vector<double> cb, wf;
  int iterations = 0;
  r->summary.mass_balance.assign(S_, MassBalance{});
  for (int m = 0; m < M_; ++m) {
    std::vector<double> tfac(S_);
    for (int s = 0; s < S_; ++s) tfac[s] = TemperatureFactor(s, t0);
    Eigen::MatrixXd K = Eigen::MatrixXd::Zero(S_, S_);
    if (has_reactions_) {
      for (int a = 0; a < S_; ++a)
        for (int b = 0; b < S_; ++b) K(a, b) = p_.reaction_matrix_per_s[a * S_ + b] * tfac[b];
    }
    bool converged = false;
    for (int iter = 0; iter < opt_.max_steady_iterations && !converged; ++iter) {
      ++iterations;
      double change = 0.0, scale = 0.0;
      for (int s = 0; s < S_; ++s) {
        BoundaryValues(h, s, m, m + 1, t0, t0, &cb, &wf);
        for (const PointLoad& l : p_.members[m].loads) {
          if (l.species == s) wf[l.segment] += l.load_g_s.At(t0);
        }
        // Limited face deviations (Courant -> 0 limit of the transient scheme).
        for (int i = 0; i < N_; ++i) acc[i] = h.Qb[i] * cb[i];
        for (int j = 0; j < N_; ++j) {
          if (down_[j] >= 0) acc[down_[j]] += h.Q[j] * C_[Idx(s, j, m)];
        }
        for (int i = 0; i < N_; ++i) {
          int d = down_[i];
          delta[i] = 0;
          if (d < 0 || h.Qin[i] <= 0 || p_.segments[i].well_mixed) continue;
          double ci = C_[Idx(s, i, m)];
          double du = ci - acc[i] / h.Qin[i], dd = C_[Idx(s, d, m)] - ci;
          double gu = du / h_up_[i], gd = dd / h_down_[i];
          double prod = gu * gd;
          double dev = prod > 0 ? 0.5 * dx_[i] * 2.0 * prod / (gu + gd) : 0.0;
          double cap = std::min(std::fabs(du), std::fabs(dd));
          delta[i] = std::max(-cap, std::min(cap, dev));
        }
        for (int i = 0; i < N_; ++i) {
          const Segment& g = p_.segments[i];
          Sorption so = Sorb(i, s);
          double V = h.V[i];
          if (V <= 0) {
            diag[i] = 1; rhs[i] = C_[Idx(s, i, m)]; lo[i] = upc[i] = 0;
            continue;
          }
          double a = g.storage_area_m2 > 0 ? g.exchange_per_s * h.A[i] / g.storage_area_m2 : 0.0;
          double lams = StorageDecay(i, s) * tfac[s];
          double ks = a + lams + so.storage_rate_per_s;
          double storage_src = so.storage_rate_per_s * so.storage_background_g_m3;
          if (has_reactions_) {
            ks -= K(s, s);
            for (int b = 0; b < S_; ++b) {
              if (b != s) storage_src += K(s, b) * Cs_[Idx(b, i, m)];
            }
          }
          // Storage zone in equilibrium: S = keep C + bgs (other species lagged).
          double keep = ks > 0 ? a / ks : 0.0;
          double bgs = ks > 0 ? storage_src / ks : 0.0;
          double kd = h.K[i];
          for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) kd += h.K[up_list_[k]];
          diag[i] = h.Qin[i] + kd + h.Kb[i] + h.qin_dx[i] + MainLoss(h, i, s, tfac[s]) * V +
                    g.exchange_per_s * V * (1.0 - keep);
          double src = (h.Qb[i] + h.Kb[i]) * cb[i] + wf[i] +
                       h.qin_dx[i] * h.CL[static_cast<size_t>(i) * S_ + s] +
                       g.exchange_per_s * V * bgs - h.Q[i] * delta[i];
          for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) {
            int j = up_list_[k];
            src += h.Q[j] * delta[j];
          }
          if (has_reactions_) {
            for (int b = 0; b < S_; ++b) {
              if (b != s) src += K(s, b) * V * C_[Idx(b, i, m)];
            }
            diag[i] -= K(s, s) * V;
          }
          rhs[i] = src;
          lo[i] = down_[i] >= 0 ? -(h.Q[i] + h.K[i]) : 0.0;  // row down(i), column i
          upc[i] = -h.K[i];                                    // row i, column down(i)
        }
        for (int j = 0; j < N_; ++j) piv[j] = diag[j];
        for (int j = 0; j < N_; ++j) {
          int d = down_[j];
          if (d < 0) continue;
          double mu = lo[j] / piv[j];
          piv[d] -= mu * upc[j];
          rhs[d] -= mu * rhs[j];
        }
        for (int i = N_ - 1; i >= 0; --i) {
          int d = down_[i];
          x[i] = (rhs[i] - (d >= 0 ? upc[i] * x[d] : 0.0)) / piv[i];
        }
        for (int i = 0; i < N_; ++i) {
          size_t k = Idx(s, i, m);
          change = std::max(change, std::fabs(x[i] - C_[k]));
          scale = std::max(scale, std::fabs(x[i]));
          C_[k] = x[i];
          const Segment& g = p_.segments[i];
          Sorption so = Sorb(i, s);
          double a = g.storage_area_m2 > 0 ? g.exchange_per_s * h.A[i] / g.storage_area_m2 : 0.0;
          double ks = a + StorageDecay(i, s) * tfac[s] + so.storage_rate_per_s;
          double storage_src = so.storage_rate_per_s * so.storage_background_g_m3;
          if (has_reactions_ && g.storage_area_m2 > 0) {
            for (int b = 0; b < S_; ++b) {
              if (b != s) storage_src += K(s, b) * Cs_[Idx(b, i, m)];
            }
          }
          double den = ks - (has_reactions_ ? K(s, s) : 0.0);
          Cs_[k] = den > 0 ? (a * x[i] + storage_src) / den : 0.0;
          Cb_[k] = so.kd_m3_per_kg * x[i];
        }
      }
      converged = change <= opt_.steady_tolerance * std::max(scale, 1e-300);
    }
    if (!converged) {
      throw SolverError("transport: steady state did not converge in " +
                        std::to_string(opt_.max_steady_iterations) + " iterations");
    }
  }
  r->summary.steady_iterations = iterations;
  // Steady budget as rates (g/s): inflow = outflow + losses.
  for (int s = 0; s < S_; ++s) {
    MassBalance& mb = r->summary.mass_balance[s];
    double tf = TemperatureFactor(s, t0);
    for (int m = 0; m < M_; ++m) {
      BoundaryValues(h, s, m, m + 1, t0, t0, &cb, &wf);
      for (const PointLoad& l : p_.members[m].loads) {
        if (l.species == s) mb.point_load_g += l.load_g_s.At(t0);
      }
      for (int i = 0; i < N_; ++i) {
        size_t k = Idx(s, i, m);
        double c = C_[k];
        mb.boundary_inflow_g += (h.Qb[i] + h.Kb[i]) * cb[i] - h.Kb[i] * c + wf[i];
        mb.lateral_inflow_g += h.qin_dx[i] * h.CL[static_cast<size_t>(i) * S_ + s];
        double cf = c;
        if (down_[i] < 0) mb.outlet_outflow_g += h.Q[i] * cf;
        mb.flow_closure_g += c * (h.Qin[i] - h.Q[i]) + h.qin_dx[i] * c;
        mb.decay_main_g += MainLoss(h, i, s, tf) * h.V[i] * c;
        double vs = p_.segments[i].storage_area_m2 * dx_[i];
        Sorption so = Sorb(i, s);
        mb.decay_storage_g += StorageDecay(i, s) * tf * vs * Cs_[k];
        mb.storage_background_g += so.storage_rate_per_s * vs * (so.storage_background_g_m3 - Cs_[k]);
      }
    }
  }
  // The limited corrections move mass between faces only, so the rate budget closes to
  // the solver tolerance; report it.
  for (int s = 0; s < S_; ++s) {
    MassBalance& mb = r->summary.mass_balance[s];
    if (has_reactions_) continue;  // reaction exchange between species not itemized here
    double in = mb.boundary_inflow_g + mb.lateral_inflow_g + mb.point_load_g + mb.storage_background_g;
    double out = mb.outlet_outflow_g + mb.flow_closure_g + mb.decay_main_g + mb.decay_storage_g;
    mb.residual_g = in - out;
    mb.relative_error = std::fabs(mb.residual_g) / std::max(std::fabs(in), 1e-300);
    r->summary.max_relative_mass_error = std::max(r->summary.max_relative_mass_error, mb.relative_error);
  }
  Record(0, r);
}

}  // namespace qingshui::transport::engine
