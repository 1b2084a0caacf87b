// Transport engine, scheduling: one split step of a work item (A I A, loads around the
// advection halves), and the run: work items, threads, steps shortened to land on output
// times, free-running items, mass budgets and the summary.
#include "transport_engine.h"

#include <chrono>
#include <exception>
#include <numeric>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace qingshui::transport::engine {

// One step (or the phases of it that `phases` names) for one work item. Chunks of kLanes
// members go through the phases one after the other, so that a chunk's data stay in cache.
void Engine::StepItem(Item& it, double t, double dt, int na, double tf, int phases) {
  const double t_mid = t + 0.5 * dt, t_end = t + dt;
  const double tau_a = 0.5 * dt / na;
  if (it.adv.tau != tau_a || it.adv.hver != hver_ || !opt_.reuse_factorizations) {
    BuildAdvCoef(&it.adv, tau_a);
  }
  const Block all = MainBlock(it);
  const size_t n_all = static_cast<size_t>(N_) * all.mb;
  it.step_t0 = t;
  it.step_t1 = t_end;
  it.step_switches = LoadsSwitchInside(t, t_end);
  // Columns of the block's chunks: loads before the first advection half / after the second.
  auto advect1 = [&](const Block& B) {
    if (it.step_switches) EdgeLoads(it, B, true);
    AdvectHalf(it, B, t, na);
  };
  auto advect2 = [&](const Block& B) {
    AdvectHalf(it, B, t_mid, na);
    if (it.step_switches) EdgeLoads(it, B, false);
  };
  auto chunk = [&](int c) {
    Block B = all;
    B.C += c;
    B.Cs += c;
    B.Cb += c;
    B.member += c;
    B.mb = std::min(kLanes, all.mb - c);
    return B;
  };
  if (phases & kPhaseJoint) {
    // All members of the species (the item holds them all) together: the advection, then
    // what a joint fallback needs to restore (state and budget), the checked full steps;
    // if any member failed, everything is restored and redone with positive sub-steps.
    if (phases & kPhaseAdvect1) {
      for (int c = 0; c < all.mb; c += kLanes) advect1(chunk(c));
    }
    it.any_fail = false;
    it.budget_before = it.budget;
    it.bC.assign(all.C, all.C + n_all);
    it.bCs.assign(all.Cs, all.Cs + n_all);
    it.bCb.assign(all.Cb, all.Cb + n_all);
    for (int c = 0; c < all.mb; c += kLanes) Implicit(it, chunk(c), t, t_end, tf, kCandidate);
    if (it.any_fail) {
      std::copy(it.bC.begin(), it.bC.end(), all.C);
      std::copy(it.bCs.begin(), it.bCs.end(), all.Cs);
      std::copy(it.bCb.begin(), it.bCb.end(), all.Cb);
      it.budget = it.budget_before;
      for (int c = 0; c < all.mb; c += kLanes) Implicit(it, chunk(c), t, t_end, tf, kFallback);
    }
    if (phases & kPhaseAdvect2) {
      for (int c = 0; c < all.mb; c += kLanes) advect2(chunk(c));
    }
    return;
  }
  // Two full chunks at a time share the implicit solve (its recurrences overlap); the
  // advection goes chunk by chunk. Members that fail the check are redone together with
  // those of the item's other chunks, after all of them (fewer, fuller groups); a block
  // with such a member takes its second advection after that. A member's operations are
  // the same either way.
  std::vector<int>& pending = it.pending;
  std::vector<int>& waiting = it.waiting;  // first column of each block still to advect
  pending.clear();
  waiting.clear();
  // Columns of the block that starts at column c: a pair of chunks, or what is left.
  auto block_width = [&](int c) {
    return all.mb - c >= kPair ? kPair : std::min(kLanes, all.mb - c);
  };
  for (int c = 0; c < all.mb;) {
    const int width = block_width(c);
    Block B = chunk(c);
    B.mb = width;
    if (phases & kPhaseAdvect1) {
      for (int h = c; h < c + width; h += kLanes) advect1(chunk(h));
    }
    const size_t before = pending.size();
    if (phases & kPhaseImplicit) Implicit(it, B, t, t_end, tf, kIndependent, &pending, c);
    if (phases & kPhaseAdvect2) {
      if (pending.size() > before) {
        waiting.push_back(c);
      } else {
        for (int h = c; h < c + width; h += kLanes) advect2(chunk(h));
      }
    }
    c += width;
  }
  if (!pending.empty()) RedoMembers(it, all, pending, t, t_end, tf);
  for (int c : waiting) {
    for (int h = c; h < c + block_width(c); h += kLanes) advect2(chunk(h));
  }
}

TransportResult Engine::Run() {
  auto wall0 = std::chrono::steady_clock::now();
  FlushSubnormals flush;
  Validate();
  BuildTopology();
  TransportResult r;
  r.num_members = M_;
  r.num_segments = N_;
  r.num_species = S_;
  r.num_stations = static_cast<int>(p_.stations.size());
  std::vector<double> outputs = p_.output_times_s;
  if (opt_.steady_state) {
    outputs = {p_.start_time_s};
  } else if (outputs.empty()) {
    outputs = {p_.start_time_s};
    if (p_.end_time_s > p_.start_time_s) outputs.push_back(p_.end_time_s);
  }
  r.times_s = outputs;
  r.num_times = static_cast<int>(outputs.size());
  size_t nf = opt_.store_fields ? static_cast<size_t>(M_) * r.num_times * N_ * S_ : 0;
  r.concentration_g_m3.assign(nf, 0.0);
  r.storage_g_m3.assign(nf, 0.0);
  r.sorbed_g_kg.assign(nf, 0.0);
  size_t nst = static_cast<size_t>(M_) * r.num_times * r.num_stations * S_;
  r.station_concentration_g_m3.assign(nst, 0.0);
  r.station_storage_g_m3.assign(nst, 0.0);
  r.station_sorbed_g_kg.assign(nst, 0.0);
  budget_.assign(S_, Budget{});

  // Work items: (species, block of members). Members are split only as far as threads
  // need; each block keeps the member-inner layout contiguous for vectorization.
  int threads = 1;
#ifdef _OPENMP
  threads = opt_.num_threads > 0 ? opt_.num_threads : omp_get_max_threads();
#endif
  // How members are advanced when the adaptive check fails for some of them: independently
  // (each member = its own single run), or all members of the species together (the same
  // linear operator for all of them, so that member sums add up). Together, a species'
  // members stay in one work item: threads then work on different species only.
  const bool together = opt_.positive_implicit && opt_.adaptive_implicit &&
                        !opt_.independent_members && M_ > 1;
  int blocks = 1;
  if (S_ < threads && !opt_.steady_state && !together) {
    blocks = std::min(M_, (threads + S_ - 1) / S_);
  }
  std::vector<int> bounds(blocks + 1);
  for (int b = 0; b <= blocks; ++b) bounds[b] = M_ * b / blocks;
  // With a fixed flow field and no reactions the work items never interact and each runs
  // all its steps on its own (free-running, below). Blocks of kCacheBlock members then keep
  // a block's state and scratch in the L2 cache from one step to the next (a 64-member
  // block of 2000 cells, 1 MB of state alone, would come from L3 every step). One pair of
  // chunks per block: blocks of 32 run the 64-member benchmark (D = 0.3) 10% slower on one
  // thread and reach only 1.7-1.8x on two; they batch the redo of failing members better
  // (app3: 200 instead of 227 ms), which does not make up for it.
  const bool steady_flow = p_.flow.states.size() == 1;
  const bool fixed_hydraulics = steady_flow && opt_.reuse_factorizations;
  constexpr int kCacheBlock = kPair;
  if (!opt_.steady_state && !together && fixed_hydraulics && !has_reactions_ &&
      M_ / blocks > kCacheBlock) {
    bounds.clear();
    for (int m = 0; m < M_; m += kCacheBlock) bounds.push_back(m);
    bounds.push_back(M_);
    blocks = static_cast<int>(bounds.size()) - 1;
  }
  SetBlocks(bounds);
  ComputeHydraulics(FlowAt(p_.start_time_s), &h_);
  OnHydraulics();
  Initialize(h_);
  if (opt_.steady_state) {
    SolveSteady(&r);
    r.summary.wall_time_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return r;
  }
  std::vector<double> initial_mass(S_);
  for (int s = 0; s < S_; ++s) initial_mass[s] = Mass(s, h_.V);

  const int n_items = S_ * blocks;
  std::vector<Item> items(n_items);
  for (int k = 0; k < n_items; ++k) {
    const int b = k % blocks;
    InitItem(items[k], k / blocks, bounds[b], bounds[b + 1]);
  }

  TransportSummary& sum = r.summary;
  // The steps, shortened to land on the output times, and how many outputs are due after
  // each.
  struct StepInfo {
    double t, dt;
    int outputs_after;
    int na;  // advection sub-steps per half step (steady flow: known in advance)
  };
  std::vector<StepInfo> steps;
  size_t next_out = 0;
  {
    double t = p_.start_time_s;
    while (next_out < outputs.size() &&
           outputs[next_out] <= t + 1e-9 * std::max(1.0, p_.time_step_s)) {
      Record(static_cast<int>(next_out++), &r);
    }
    const double tol = 1e-9 * p_.time_step_s;
    double last_dt = -1.0;
    int na = 1;
    while (t < p_.end_time_s - tol) {
      double dt = std::min(p_.time_step_s, p_.end_time_s - t);
      if (next_out < outputs.size()) dt = std::min(dt, outputs[next_out] - t);
      const double t_end = t + dt;
      size_t after = next_out;
      while (after < outputs.size() && outputs[after] <= t_end + tol) ++after;
      if (fixed_hydraulics && dt != last_dt) {
        for (int i = 0; i < N_; ++i) {
          if (h_.V[i] > 0) {
            sum.max_courant_requested = std::max(sum.max_courant_requested,
                                                 std::max(h_.Q[i], h_.Qin[i]) * dt / h_.V[i]);
          }
        }
        na = AdvectionSubsteps(h_, 0.5 * dt);
        last_dt = dt;
      }
      steps.push_back({t, dt, static_cast<int>(after), na});
      next_out = after;
      t = t_end;
    }
  }
  // Outputs recorded before the first step.
  int recorded = 0;
  while (recorded < r.num_times &&
         outputs[recorded] <= p_.start_time_s + 1e-9 * std::max(1.0, p_.time_step_s)) {
    ++recorded;
  }
  // Work items never interact while no reaction couples the species and the hydraulics are
  // fixed: each then runs all its steps without waiting for the others (no barrier per
  // step).
  const bool free_running = !has_reactions_ && fixed_hydraulics;
  const int implicit_phase = together ? kPhaseJoint : kPhaseImplicit;
  std::exception_ptr error;
  auto keep_error = [&]() {
#pragma omp critical(qingshui_transport_error)
    if (!error) error = std::current_exception();
  };
  const double t_end_run = steps.empty() ? p_.start_time_s : steps.back().t + steps.back().dt;
  std::vector<double> v_prev = h_.V;
  if (free_running) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (n_items > 1)
    for (int k = 0; k < n_items; ++k) {
      Item& it = items[k];
      if (it.m1 <= it.m0) continue;
      FlushSubnormals flush_in_thread;
      try {
        it.step_used.assign(steps.size(), 0);
        int rec = recorded;
        for (size_t q = 0; q < steps.size(); ++q) {
          const StepInfo& st = steps[q];
          it.used_substeps = 0;
          StepItem(it, st.t, st.dt, st.na, TemperatureFactor(it.s, st.t + 0.5 * st.dt),
                   kPhaseAdvect1 | implicit_phase | kPhaseAdvect2);
          it.step_used[q] = it.used_substeps;
          if (!std::isfinite(C_[Idx(it.s, 0, it.m0)])) {
            throw SolverError("transport: non-finite concentration");
          }
          for (; rec < st.outputs_after; ++rec) RecordRange(it.s, it.m0, it.m1, rec, &r);
        }
      } catch (...) {
        keep_error();
      }
    }
    if (error) std::rethrow_exception(error);
    for (size_t q = 0; q < steps.size(); ++q) {
      int used = 0;
      for (const Item& it : items) {
        if (!it.step_used.empty()) used = std::max(used, it.step_used[q]);
      }
      sum.implicit_substeps += used;
      sum.max_implicit_substeps = std::max(sum.max_implicit_substeps, used);
    }
  } else {
    std::vector<double> tf(S_);
    for (StepInfo& st : steps) {
      const double t = st.t, dt = st.dt, t_mid = t + 0.5 * dt;
      int& na = st.na;
      if (!fixed_hydraulics) {
        ComputeHydraulics(FlowAt(t_mid), &h_);
        OnHydraulics();
        Rebase(v_prev, h_.V, &budget_);
        v_prev = h_.V;
        for (int i = 0; i < N_; ++i) {
          if (h_.V[i] > 0) {
            sum.max_courant_requested = std::max(sum.max_courant_requested,
                                                 std::max(h_.Q[i], h_.Qin[i]) * dt / h_.V[i]);
          }
        }
        na = AdvectionSubsteps(h_, 0.5 * dt);
      }
      for (int s = 0; s < S_; ++s) tf[s] = TemperatureFactor(s, t_mid);
      for (Item& it : items) it.used_substeps = 0;
      auto run_items = [&](int phases) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n_items > 1)
        for (int k = 0; k < n_items; ++k) {
          Item& it = items[k];
          if (it.m1 <= it.m0) continue;
          FlushSubnormals flush_in_thread;
          try {
            StepItem(it, t, dt, na, tf[it.s], phases);
          } catch (...) {
            keep_error();
          }
        }
        if (error) std::rethrow_exception(error);
      };
      // Strang splitting: A(dt/2) [R(dt/2)] I(dt) [R(dt/2)] A(dt/2).
      if (!has_reactions_) {
        run_items(kPhaseAdvect1 | implicit_phase | kPhaseAdvect2);
      } else {
        run_items(kPhaseAdvect1);
        React(h_, 0.5 * dt, t_mid, &budget_);
        run_items(implicit_phase);
        React(h_, 0.5 * dt, t_mid, &budget_);
        run_items(kPhaseAdvect2);
      }
      int used = 0;
      for (const Item& it : items) used = std::max(used, it.used_substeps);
      sum.implicit_substeps += used;
      sum.max_implicit_substeps = std::max(sum.max_implicit_substeps, used);
      if (!std::isfinite(C_[0])) throw SolverError("transport: non-finite concentration");
      for (; recorded < st.outputs_after; ++recorded) Record(recorded, &r);
    }
  }
  for (const StepInfo& st : steps) {
    sum.advection_substeps += 2LL * st.na;
    sum.max_advection_substeps = std::max(sum.max_advection_substeps, st.na);
  }
  sum.num_steps = static_cast<int>(steps.size());
  const double t = t_end_run;
  next_out = steps.empty() ? next_out : static_cast<size_t>(steps.back().outputs_after);
  while (next_out < outputs.size()) Record(static_cast<int>(next_out++), &r);
  for (const Item& it : items) {
    budget_[it.s].Add(it.budget);
    sum.implicit_checked_steps += it.checked;
    sum.implicit_fallbacks += it.fallbacks;
  }
  Hydraulics h_end;
  ComputeHydraulics(FlowAt(t), &h_end);
  Rebase(v_prev, h_end.V, &budget_);
  sum.mass_balance.resize(S_);
  for (int s = 0; s < S_; ++s) {
    MassBalance& mb = sum.mass_balance[s];
    const Budget& b = budget_[s];
    mb.initial_mass_g = initial_mass[s];
    mb.final_mass_g = Mass(s, h_end.V);
    mb.boundary_inflow_g = b.boundary;
    mb.lateral_inflow_g = b.lateral;
    mb.point_load_g = b.load;
    mb.outlet_outflow_g = b.outlet;
    mb.flow_closure_g = b.closure;
    mb.decay_main_g = b.decay_main;
    mb.decay_storage_g = b.decay_storage;
    mb.storage_background_g = b.background;
    mb.reaction_g = b.reaction;
    double sources = b.boundary + b.lateral + b.load + b.background + b.reaction;
    double sinks = b.outlet + b.closure + b.decay_main + b.decay_storage;
    mb.residual_g = mb.final_mass_g - mb.initial_mass_g - (sources - sinks);
    double scale = std::max({std::fabs(mb.initial_mass_g), std::fabs(mb.final_mass_g),
                             std::fabs(b.boundary) + std::fabs(b.lateral) + std::fabs(b.load) +
                                 std::fabs(b.background) + std::fabs(b.reaction),
                             std::numeric_limits<double>::min()});
    mb.relative_error = std::fabs(mb.residual_g) / scale;
    sum.max_relative_mass_error = std::max(sum.max_relative_mass_error, mb.relative_error);
  }
  for (double c : C_) {
    if (!std::isfinite(c)) throw SolverError("transport: non-finite concentration");
  }
  sum.wall_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return r;
}

}  // namespace qingshui::transport::engine
