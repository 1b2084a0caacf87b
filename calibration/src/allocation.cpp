#include "qingshui/calibration/allocation.h"

#include <glpk.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <memory>
#include <random>
#include <sstream>

#include "qingshui/calibration/apportion.h"
#include "qingshui/core/error.h"
#include "qingshui/hydro/simulation.h"
#include "yaml_util.h"

namespace qingshui::calibration {

namespace {

constexpr double kKgPerDayPerGs = 86.4;  // 1 g/s = 86.4 kg/d

// One sampled month: multipliers (temperature in deg C).
struct Scenario {
  double headwater = 1, loss = 1, source = 1, velocity = 1, dispersion = 1, lake = 1,
         temperature = 20;
  std::map<std::string, double> decay;
};

double Draw(const Uncertain& u, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  switch (u.kind) {
    case Uncertain::Kind::kFixed:
      return u.a;
    case Uncertain::Kind::kLognormal: {
      const double sigma = std::sqrt(std::log1p(u.b * u.b));
      return u.a * std::exp(sigma * normal(rng));
    }
    case Uncertain::Kind::kNormal:
      return std::max(0.0, u.a * (1 + u.b * normal(rng)));
    case Uncertain::Kind::kUniform:
      return u.a + (u.b - u.a) * uniform(rng);
  }
  return u.a;
}

std::vector<Scenario> Sample(const AllocationProblem& p, int n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Scenario> out(n);
  for (auto& s : out) {
    s.headwater = Draw(p.headwater_flow, rng);
    s.loss = Draw(p.lateral_loss, rng);
    s.source = Draw(p.source_flow, rng);
    s.velocity = Draw(p.velocity, rng);
    s.dispersion = Draw(p.dispersion, rng);
    s.lake = Draw(p.lake_depth, rng);
    s.temperature = Draw(p.temperature_c, rng);
    for (const auto& [k, u] : p.decay) s.decay[k] = Draw(u, rng);
  }
  return out;
}

bool Discharges(SourceKind k) {
  return k == SourceKind::kTreatmentPlant || k == SourceKind::kIndustrialOutfall ||
         k == SourceKind::kFarmlandDrainage || k == SourceKind::kLakeOutflow;
}

// The network of one scenario with effluent concentrations `eff` for the controlled
// (source, species).
Network ScenarioNetwork(const Network& base, const AllocationProblem& p, const Scenario& s,
                        const std::map<std::pair<std::string, std::string>, double>& eff) {
  Network net = base;
  const std::string season = p.season.empty() ? hydro::SeasonOfDate(p.date) : p.season;
  for (auto& r : net.reaches) {
    for (auto& [name, hw] : r.headwater) hw.flow_m3s *= s.headwater;
    for (auto& [name, lf] : r.lateral_flow) lf.loss_m2s *= s.loss;
  }
  for (auto& src : net.sources) {
    if (Discharges(src.kind)) src.design_flow_m3s *= s.source;
    for (auto& [k, v] : src.effluent_mg_l) {
      auto it = eff.find({src.id, k});
      if (it != eff.end()) v = it->second;
    }
  }
  for (auto& l : net.lakes) {
    l.mean_depth_m *= s.lake;
    for (auto& lv : l.levels) lv.depth_m *= s.lake;
  }
  for (auto& sp : net.species) {
    auto it = s.decay.find(sp.id);
    if (it != s.decay.end()) sp.decay_per_s *= it->second;
  }
  (void)season;
  return net;
}

hydro::Simulation ScenarioSimulation(const Network& net, const AllocationProblem& p,
                                     const Scenario& s) {
  hydro::SimulationOptions o;
  o.start_date = p.date;
  o.days = 1;
  o.season = p.season;
  o.velocity_factor = s.velocity;
  o.dispersion_factor = s.dispersion;
  o.temperature_c = s.temperature;
  hydro::Simulation sim = hydro::BuildSimulation(net, o);
  sim.transport_options.num_threads = 1;
  // Defect correction of the steady solver converges slowly on some grids; see apportion.h.
  sim.transport_options.steady_tolerance = 1e-11;
  sim.transport_options.max_steady_iterations = 5000;
  return sim;
}

// Linear model of one scenario at one operating point: C_t = B_t + sum_j R_tj x_j for each
// target t and decision variable j = (source, species of the target).
struct Linear {
  std::vector<double> base;                   // B_t
  std::vector<std::vector<double>> response;  // [t][j], mg/L per mg/L of effluent
};

struct Variable {
  std::string source, species;
  double flow_m3s = 0, current = 0, min = 0, cost = 1;
};

// GLPK owns C memory; this frees it on every path.
struct Lp {
  glp_prob* p = glp_create_prob();
  ~Lp() { glp_delete_prob(p); }
};

struct LpSolution {
  bool ok = false;
  std::vector<double> x;
  std::vector<double> row_dual;  // per row
  double objective = 0;
};

// minimize sum_j w_j (current_j - x_j) subject to, for kept scenarios n and targets t,
// sum_j R[n][t][j] x_j <= limit_t - B[n][t], min_j <= x_j <= current_j.
LpSolution SolveLp(const std::vector<Variable>& vars, const std::vector<double>& weight,
                   const std::vector<Linear>& lin, const std::vector<bool>& kept,
                   const std::vector<double>& limit, std::vector<std::pair<int, int>>* rows) {
  Lp lp;
  glp_set_obj_dir(lp.p, GLP_MIN);
  const int nv = static_cast<int>(vars.size());
  glp_add_cols(lp.p, nv);
  double constant = 0;
  for (int j = 0; j < nv; ++j) {
    if (vars[j].min < vars[j].current) {
      glp_set_col_bnds(lp.p, j + 1, GLP_DB, vars[j].min, vars[j].current);
    } else {
      glp_set_col_bnds(lp.p, j + 1, GLP_FX, vars[j].current, vars[j].current);
    }
    glp_set_obj_coef(lp.p, j + 1, -weight[j]);
    constant += weight[j] * vars[j].current;
  }
  glp_set_obj_coef(lp.p, 0, constant);
  rows->clear();
  std::vector<int> ia(1), ja(1);
  std::vector<double> ar(1);
  for (size_t n = 0; n < lin.size(); ++n) {
    if (!kept[n]) continue;
    for (size_t t = 0; t < limit.size(); ++t) {
      const int row = glp_add_rows(lp.p, 1);
      glp_set_row_bnds(lp.p, row, GLP_UP, 0.0, limit[t] - lin[n].base[t]);
      for (int j = 0; j < nv; ++j) {
        const double a = lin[n].response[t][j];
        if (a == 0.0) continue;
        ia.push_back(row);
        ja.push_back(j + 1);
        ar.push_back(a);
      }
      rows->push_back({static_cast<int>(n), static_cast<int>(t)});
    }
  }
  glp_load_matrix(lp.p, static_cast<int>(ia.size()) - 1, ia.data(), ja.data(), ar.data());
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = GLP_OFF;
  LpSolution s;
  const int rc = glp_simplex(lp.p, &parm);
  if (rc != 0 || glp_get_status(lp.p) != GLP_OPT) return s;
  s.ok = true;
  s.objective = glp_get_obj_val(lp.p);
  for (int j = 0; j < nv; ++j) s.x.push_back(glp_get_col_prim(lp.p, j + 1));
  for (int r = 1; r <= glp_get_num_rows(lp.p); ++r) s.row_dual.push_back(glp_get_row_dual(lp.p, r));
  return s;
}

double Quantile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t i =
      std::min(v.size() - 1, static_cast<size_t>(std::ceil(p * v.size())) - (p > 0 ? 1 : 0));
  return v[i];
}

void Wilson(int met, int n, double* lo, double* hi) {
  if (n == 0) return;
  const double z = 1.96, ph = static_cast<double>(met) / n;
  const double d = 1 + z * z / n;
  const double c = (ph + z * z / (2 * n)) / d;
  const double w = z * std::sqrt(ph * (1 - ph) / n + z * z / (4.0 * n * n)) / d;
  *lo = std::max(0.0, c - w);
  *hi = std::min(1.0, c + w);
}

}  // namespace

bool AllocationProblem::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (date.size() != 10) return fail("date: expected YYYY-MM-DD");
  if (!(probability > 0 && probability < 1)) return fail("probability: expected in (0, 1)");
  if (targets.empty()) return fail("targets: at least one");
  if (sources.empty()) return fail("sources: at least one controllable source");
  if (objective != "removal" && objective != "cost") return fail("objective: 'removal' or 'cost'");
  if (scenarios < 10 || scenarios > 100000) return fail("scenarios: expected 10 to 100000");
  if (verification_scenarios < 0) return fail("verification_scenarios: expected >= 0");
  if (passes < 1 || passes > 10) return fail("passes: expected 1 to 10");
  return true;
}

AllocationResult Allocate(const Network& base_net, const AllocationProblem& p) {
  const auto wall0 = std::chrono::steady_clock::now();
  std::string error;
  if (!p.IsValid(&error)) throw ConfigError("allocation: " + error);
  AllocationResult res;
  res.objective_unit = p.objective == "cost" ? p.cost_unit + "/d" : "kg/d";

  // Targets: limits from the standard.
  std::vector<AllocationTarget> targets = p.targets;
  std::vector<double> limit;
  for (auto& t : targets) {
    if (!base_net.FindStation(t.station))
      throw ConfigError("allocation: unknown station '" + t.station + "'");
    if (!base_net.FindSpecies(t.species))
      throw ConfigError("allocation: unknown species '" + t.species + "'");
    if (!(t.limit_mg_l > 0)) {
      if (!base_net.standard)
        throw ConfigError("allocation: the network has no standard to take class limits from");
      const Indicator* ind = base_net.standard->Find(t.species);
      const auto& cl = base_net.standard->classes;
      const auto it = std::find(cl.begin(), cl.end(), t.target_class);
      if (!ind || it == cl.end()) {
        throw ConfigError("allocation: no limit for " + t.species + " class '" + t.target_class +
                          "' in " + base_net.standard->id);
      }
      t.limit_mg_l = ind->limits_mg_l[it - cl.begin()];
    }
    limit.push_back(t.limit_mg_l);
  }
  // Decision variables: (controllable source running on the date, species of a target).
  std::vector<std::string> target_species;
  for (const auto& t : targets) {
    if (std::find(target_species.begin(), target_species.end(), t.species) ==
        target_species.end()) {
      target_species.push_back(t.species);
    }
  }
  std::vector<Variable> vars;
  std::vector<std::string> resolved;
  for (const auto& cs : p.sources) {
    const Source* src = base_net.FindSource(cs.id);
    if (!src) throw ConfigError("allocation: unknown source '" + cs.id + "'");
    const hydro::SourceActivity act = hydro::SourceActivityOn(base_net, *src, p.date);
    if (!act.active || !(src->design_flow_m3s > 0)) {
      res.notes.push_back(cs.id + " does not discharge on " + p.date + " (" + act.reason +
                          "): not controlled");
      continue;
    }
    bool any = false;
    for (const auto& k : target_species) {
      auto mn = cs.min_mg_l.find(k);
      auto cur = src->effluent_mg_l.find(k);
      if (mn == cs.min_mg_l.end() || cur == src->effluent_mg_l.end()) continue;
      Variable v;
      v.source = cs.id;
      v.species = k;
      v.flow_m3s = src->design_flow_m3s;
      v.current = cur->second;
      v.min = std::min(mn->second, cur->second);
      auto c = cs.cost_per_kg.find(k);
      v.cost = c == cs.cost_per_kg.end() ? 0.0 : c->second;
      if (p.objective == "cost" && c == cs.cost_per_kg.end()) {
        throw ConfigError("allocation: source '" + cs.id + "' has no cost per kg for " + k);
      }
      vars.push_back(v);
      any = true;
    }
    if (any) resolved.push_back(cs.id);
  }
  if (vars.empty())
    throw ConfigError("allocation: no controllable source discharges a target species on " +
                      p.date);
  const int nv = static_cast<int>(vars.size()), nt = static_cast<int>(targets.size());
  std::vector<double> weight(nv);
  for (int j = 0; j < nv; ++j) {
    weight[j] = vars[j].flow_m3s * kKgPerDayPerGs * (p.objective == "cost" ? vars[j].cost : 1.0);
  }

  const std::vector<Scenario> scen = Sample(p, p.scenarios, p.seed);
  const int N = p.scenarios;
  // Operating point: today's effluents, then the previous pass's solution.
  std::vector<double> x(nv);
  for (int j = 0; j < nv; ++j) x[j] = vars[j].current;
  std::vector<Linear> lin(N);
  std::vector<bool> kept(N, true);
  LpSolution sol;
  std::vector<std::pair<int, int>> rows;
  std::vector<double> first_linear_at_x;  // for the linearization error
  for (int pass = 0; pass < p.passes; ++pass) {
    std::map<std::pair<std::string, std::string>, double> eff;
    for (int j = 0; j < nv; ++j) eff[{vars[j].source, vars[j].species}] = std::max(x[j], 1e-9);
    double max_lin_err = 0;
    for (int n = 0; n < N; ++n) {
      const Network net = ScenarioNetwork(base_net, p, scen[n], eff);
      const hydro::Simulation sim = ScenarioSimulation(net, p, scen[n]);
      ApportionOptions ao;
      ao.steady_state = true;
      ao.only = resolved;
      const Apportionment a = Apportion(sim, ao);
      Linear L;
      L.base.assign(nt, 0.0);
      L.response.assign(nt, std::vector<double>(nv, 0.0));
      for (int t = 0; t < nt; ++t) {
        const int s =
            static_cast<int>(std::find(a.stations.begin(), a.stations.end(), targets[t].station) -
                             a.stations.begin());
        const int k = static_cast<int>(
            std::find(a.species.begin(), a.species.end(), targets[t].species) - a.species.begin());
        double controlled = 0;
        for (int j = 0; j < nv; ++j) {
          if (vars[j].species != targets[t].species) continue;
          const int c = static_cast<int>(
              std::find(a.contributors.begin(), a.contributors.end(), vars[j].source) -
              a.contributors.begin());
          const double cj = a.Contribution(c, 0, s, k);
          L.response[t][j] = cj / eff[{vars[j].source, vars[j].species}];
          controlled += cj;
        }
        // Contributions of the controlled source for species other than the variables'
        // (none: species do not react with each other in the network) stay in B.
        L.base[t] = a.Total(0, s, k) - controlled;
        if (pass > 0) {
          double predicted = lin[n].base[t];
          for (int j = 0; j < nv; ++j) predicted += lin[n].response[t][j] * x[j];
          max_lin_err = std::max(max_lin_err, std::abs(predicted - a.Total(0, s, k)));
        }
      }
      lin[n] = L;
    }
    if (pass > 0) res.max_linearization_error_mg_l = max_lin_err;
    // Scenarios that no allowed effluent can bring under the limits are discarded first.
    std::fill(kept.begin(), kept.end(), true);
    int hopeless = 0;
    for (int n = 0; n < N; ++n) {
      for (int t = 0; t < nt; ++t) {
        double best = lin[n].base[t];
        for (int j = 0; j < nv; ++j) best += lin[n].response[t][j] * vars[j].min;
        if (best > limit[t] * (1 + 1e-12)) {
          kept[n] = false;
          ++hopeless;
          break;
        }
      }
    }
    // In-sample level raised by a one-sided 95% binomial margin, so that the probability
    // for fresh months is p or better (the forward Monte Carlo checks it).
    const double p_in =
        std::min(1.0, p.probability + 1.645 * std::sqrt(p.probability * (1 - p.probability) / N));
    const int may_discard = static_cast<int>(std::floor((1 - p_in) * N + 1e-9));
    if (hopeless > may_discard) {
      res.feasible = false;
      res.message = std::to_string(hopeless) + " of " + std::to_string(N) +
                    " scenarios exceed a target even with every controlled source at its technical "
                    "minimum: the targets cannot be met with probability " +
                    std::to_string(p.probability) +
                    " by these sources alone (best possible about " +
                    std::to_string(1.0 - static_cast<double>(hopeless) / N) + ")";
      for (int j = 0; j < nv; ++j) x[j] = vars[j].min;
      sol.ok = false;
      break;
    }
    int discarded = hopeless;
    sol = SolveLp(vars, weight, lin, kept, limit, &rows);
    if (!sol.ok)
      throw SolverError("allocation: GLPK found no optimal solution for the scenario LP");
    // Sampling and discarding: drop the scenario whose constraints carry the largest
    // duals (the one that costs most), re-solve, until the allowance is used.
    while (discarded < may_discard) {
      std::vector<double> cost(N, 0.0);
      for (size_t r = 0; r < rows.size(); ++r) cost[rows[r].first] += std::abs(sol.row_dual[r]);
      const int worst = static_cast<int>(std::max_element(cost.begin(), cost.end()) - cost.begin());
      if (!(cost[worst] > 0)) break;  // nothing binds: discarding gains nothing
      kept[worst] = false;
      ++discarded;
      sol = SolveLp(vars, weight, lin, kept, limit, &rows);
      if (!sol.ok)
        throw SolverError("allocation: GLPK found no optimal solution for the scenario LP");
    }
    res.discarded = discarded;
    x = sol.x;
    res.feasible = true;
  }
  res.scenarios = N;
  int kept_count = 0;
  for (int n = 0; n < N; ++n) kept_count += kept[n] ? 1 : 0;
  res.in_sample_probability = static_cast<double>(kept_count) / N;

  // Report: limits, objective, targets with quantiles, margins and shadow prices.
  res.objective = 0;
  for (int j = 0; j < nv; ++j) {
    SourceLimit l;
    l.source = vars[j].source;
    l.species = vars[j].species;
    l.flow_m3s = vars[j].flow_m3s;
    l.current_mg_l = vars[j].current;
    l.limit_mg_l = x[j];
    l.min_mg_l = vars[j].min;
    l.removal_kg_d = (vars[j].current - x[j]) * vars[j].flow_m3s * kKgPerDayPerGs;
    l.cost_per_day = l.removal_kg_d * vars[j].cost;
    l.at_minimum = x[j] <= vars[j].min * (1 + 1e-9) + 1e-12;
    res.objective += p.objective == "cost" ? l.cost_per_day : l.removal_kg_d;
    res.limits.push_back(l);
  }
  for (int t = 0; t < nt; ++t) {
    TargetResult tr;
    tr.station = targets[t].station;
    tr.species = targets[t].species;
    tr.limit_mg_l = limit[t];
    std::vector<double> at, now;
    for (int n = 0; n < N; ++n) {
      double c = lin[n].base[t], c0 = lin[n].base[t];
      for (int j = 0; j < nv; ++j) {
        c += lin[n].response[t][j] * x[j];
        c0 += lin[n].response[t][j] * vars[j].current;
      }
      at.push_back(c);
      now.push_back(c0);
    }
    tr.quantile_mg_l = Quantile(at, p.probability);
    tr.current_quantile_mg_l = Quantile(now, p.probability);
    tr.margin_mg_l = limit[t] - tr.quantile_mg_l;
    if (sol.ok) {
      double dual = 0;
      for (size_t r = 0; r < rows.size(); ++r) {
        if (rows[r].second == t) dual += sol.row_dual[r];
      }
      tr.shadow_price = dual == 0.0 ? 0.0 : -dual;
      tr.binding = tr.shadow_price > 1e-9;
    }
    res.targets.push_back(tr);
  }

  // Forward Monte Carlo: fresh months, full steady runs at the limits and at today's
  // effluents.
  const std::vector<Scenario> fresh = Sample(p, p.verification_scenarios, p.seed + 7919);
  std::map<std::pair<std::string, std::string>, double> eff, today;
  for (int j = 0; j < nv; ++j) {
    eff[{vars[j].source, vars[j].species}] = x[j];
    today[{vars[j].source, vars[j].species}] = vars[j].current;
  }
  std::vector<int> met_target(nt, 0);
  int met_now = 0;
  for (const Scenario& s : fresh) {
    for (int which = 0; which < 2; ++which) {
      const Network net = ScenarioNetwork(base_net, p, s, which == 0 ? eff : today);
      hydro::Simulation sim = ScenarioSimulation(net, p, s);
      transport::TransportOptions o = sim.transport_options;
      o.steady_state = true;
      const transport::TransportResult r = transport::TransportSolver(o).Run(sim.problem);
      bool all = true;
      for (int t = 0; t < nt; ++t) {
        const int st = static_cast<int>(
            std::find(sim.station_ids.begin(), sim.station_ids.end(), targets[t].station) -
            sim.station_ids.begin());
        const int k =
            static_cast<int>(std::find(sim.species.begin(), sim.species.end(), targets[t].species) -
                             sim.species.begin());
        const bool ok = r.StationConcentration(0, 0, st, k) <= limit[t];
        all = all && ok;
        if (which == 0 && ok) ++met_target[t];
      }
      if (which == 0) {
        res.verification_met += all ? 1 : 0;
      } else {
        met_now += all ? 1 : 0;
      }
    }
  }
  res.verification_runs = static_cast<int>(fresh.size());
  if (res.verification_runs > 0) {
    res.verified_probability = static_cast<double>(res.verification_met) / res.verification_runs;
    res.current_probability = static_cast<double>(met_now) / res.verification_runs;
    Wilson(res.verification_met, res.verification_runs, &res.verified_low, &res.verified_high);
    for (int t = 0; t < nt; ++t) {
      res.targets[t].verified_probability =
          static_cast<double>(met_target[t]) / res.verification_runs;
    }
  }
  if (res.message.empty()) {
    res.message = res.feasible ? "optimal" : "infeasible";
  }
  res.wall_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return res;
}

std::string AllocationResult::BriefReport() const {
  std::ostringstream o;
  o << std::setprecision(4);
  o << (feasible ? "feasible" : "NOT feasible") << ": " << message << "\n";
  for (const auto& n : notes) o << "note: " << n << "\n";
  o << "objective " << objective << " " << objective_unit << "; " << scenarios << " scenarios, "
    << discarded << " discarded (in-sample probability " << in_sample_probability << ")\n";
  o << "effluent limits (mg/L):\n";
  for (const auto& l : limits) {
    o << "  " << std::left << std::setw(28) << l.source << std::setw(6) << l.species << std::right
      << " today " << std::setw(7) << l.current_mg_l << "  limit " << std::setw(8) << l.limit_mg_l
      << "  (technical minimum " << l.min_mg_l << (l.at_minimum ? ", reached" : "") << ")  removal "
      << l.removal_kg_d << " kg/d\n";
  }
  o << "targets:\n";
  for (const auto& t : targets) {
    o << "  " << t.station << " " << t.species << " <= " << t.limit_mg_l << " mg/L: quantile "
      << t.quantile_mg_l << " (today " << t.current_quantile_mg_l << "), margin " << t.margin_mg_l
      << (t.binding ? ", binding, shadow price " : ", not binding, shadow price ") << t.shadow_price
      << " " << objective_unit << " per mg/L; forward Monte Carlo " << t.verified_probability
      << "\n";
  }
  o << "forward Monte Carlo (" << verification_runs
    << " fresh months, full model): all targets met in " << verification_met << " = "
    << verified_probability << " (95% interval " << verified_low << "-" << verified_high
    << "); with today's effluents " << current_probability << "\n";
  o << "largest linearization error " << max_linearization_error_mg_l << " mg/L; " << wall_time_s
    << " s\n";
  return o.str();
}

std::string FormatLimits(const AllocationResult& r) {
  std::ostringstream o;
  o << std::setprecision(8)
    << "source,species,flow_m3s,current_mg_l,limit_mg_l,technical_min_mg_l,at_minimum,removal_kg_d,"
       "cost_per_day\n";
  for (const auto& l : r.limits) {
    o << l.source << "," << l.species << "," << l.flow_m3s << "," << l.current_mg_l << ","
      << l.limit_mg_l << "," << l.min_mg_l << "," << (l.at_minimum ? 1 : 0) << "," << l.removal_kg_d
      << "," << l.cost_per_day << "\n";
  }
  return o.str();
}

std::string FormatTargets(const AllocationResult& r) {
  std::ostringstream o;
  o << std::setprecision(8)
    << "station,species,limit_mg_l,quantile_mg_l,current_quantile_mg_l,margin_mg_l,binding,shadow_"
       "price,"
       "verified_probability\n";
  for (const auto& t : r.targets) {
    o << t.station << "," << t.species << "," << t.limit_mg_l << "," << t.quantile_mg_l << ","
      << t.current_quantile_mg_l << "," << t.margin_mg_l << "," << (t.binding ? 1 : 0) << ","
      << t.shadow_price << "," << t.verified_probability << "\n";
  }
  return o.str();
}

namespace {

Uncertain ReadUncertain(const YamlDoc& doc, const YAML::Node& n, const std::string& field) {
  Uncertain u;
  if (n.IsScalar()) {
    u.a = doc.Number(n, field);
    return u;
  }
  const std::string d =
      doc.String(doc.Required(n, "distribution", field + ".distribution"), field + ".distribution");
  if (n["src"]) u.src = doc.String(n["src"], field + ".src");
  if (d == "fixed") {
    u.kind = Uncertain::Kind::kFixed;
    u.a = doc.Number(doc.Required(n, "value", field + ".value"), field + ".value");
  } else if (d == "lognormal" || d == "normal") {
    u.kind = d == "lognormal" ? Uncertain::Kind::kLognormal : Uncertain::Kind::kNormal;
    u.a = n["median"] ? doc.Number(n["median"], field + ".median")
          : n["mean"] ? doc.Number(n["mean"], field + ".mean")
                      : 1.0;
    u.b = doc.Number(doc.Required(n, "cv", field + ".cv"), field + ".cv");
    if (!(u.b >= 0) || !(u.a > 0))
      throw ConfigError(doc.Where(n, field) + "expected median/mean > 0 and cv >= 0");
  } else if (d == "uniform") {
    u.kind = Uncertain::Kind::kUniform;
    u.a = doc.Number(doc.Required(n, "low", field + ".low"), field + ".low");
    u.b = doc.Number(doc.Required(n, "high", field + ".high"), field + ".high");
    if (!(u.a <= u.b)) throw ConfigError(doc.Where(n, field) + "low above high");
  } else {
    throw ConfigError(doc.Where(n, field + ".distribution") + "unknown distribution '" + d +
                      "' (fixed, lognormal, normal, uniform)");
  }
  return u;
}

}  // namespace

AllocationProblem ReadAllocationFile(const std::string& path) {
  YamlDoc doc(path);
  const YAML::Node& root = doc.root();
  AllocationProblem p;
  p.date = doc.String(doc.Required(root, "date", "date"), "date");
  if (root["season"]) p.season = doc.String(root["season"], "season");
  if (root["probability"]) p.probability = doc.Number(root["probability"], "probability");
  if (root["objective"]) p.objective = doc.String(root["objective"], "objective");
  if (root["cost_unit"]) p.cost_unit = doc.String(root["cost_unit"], "cost_unit");
  if (root["scenarios"]) p.scenarios = static_cast<int>(doc.Number(root["scenarios"], "scenarios"));
  if (root["verification_scenarios"]) {
    p.verification_scenarios =
        static_cast<int>(doc.Number(root["verification_scenarios"], "verification_scenarios"));
  }
  if (root["seed"]) p.seed = static_cast<std::uint64_t>(doc.Number(root["seed"], "seed"));
  if (root["passes"]) p.passes = static_cast<int>(doc.Number(root["passes"], "passes"));
  const YAML::Node targets = doc.Required(root, "targets", "targets");
  for (size_t i = 0; i < targets.size(); ++i) {
    const YAML::Node n = targets[i];
    const std::string f = "targets[" + std::to_string(i) + "]";
    const std::string station =
        doc.String(doc.Required(n, "station", f + ".station"), f + ".station");
    std::vector<std::string> species;
    const YAML::Node sp = doc.Required(n, "species", f + ".species");
    if (sp.IsSequence()) {
      for (const auto& s : sp) species.push_back(doc.String(s, f + ".species"));
    } else {
      species.push_back(doc.String(sp, f + ".species"));
    }
    for (const auto& s : species) {
      AllocationTarget t;
      t.station = station;
      t.species = s;
      if (n["class"]) t.target_class = doc.String(n["class"], f + ".class");
      if (n["limit_mg_l"]) t.limit_mg_l = doc.Number(n["limit_mg_l"], f + ".limit_mg_l");
      if (t.target_class.empty() && !(t.limit_mg_l > 0)) {
        throw ConfigError(doc.Where(n, f) + "give a class (e.g. III) or limit_mg_l");
      }
      p.targets.push_back(t);
    }
  }
  const YAML::Node sources = doc.Required(root, "sources", "sources");
  for (size_t i = 0; i < sources.size(); ++i) {
    const YAML::Node n = sources[i];
    const std::string f = "sources[" + std::to_string(i) + "]";
    ControllableSource cs;
    cs.id = doc.String(doc.Required(n, "id", f + ".id"), f + ".id");
    for (const char* key : {"min_mg_l", "cost_per_kg"}) {
      if (!n[key]) continue;
      for (const auto& kv : n[key]) {
        const std::string sp = doc.Key(kv.first, f + "." + key);
        const double v = doc.Number(kv.second, f + "." + key + "." + sp);
        if (!(v >= 0))
          throw ConfigError(doc.Where(kv.second, f + "." + key + "." + sp) + "must be >= 0");
        (std::string(key) == "min_mg_l" ? cs.min_mg_l : cs.cost_per_kg)[sp] = v;
        cs.src[std::string(key) + "." + sp] = doc.Source(kv.second);
      }
    }
    p.sources.push_back(cs);
  }
  if (const YAML::Node u = root["uncertainty"]) {
    auto get = [&](const char* key, Uncertain* out) {
      if (u[key]) *out = ReadUncertain(doc, u[key], std::string("uncertainty.") + key);
    };
    get("headwater_flow", &p.headwater_flow);
    get("lateral_loss", &p.lateral_loss);
    get("source_flow", &p.source_flow);
    get("velocity", &p.velocity);
    get("dispersion", &p.dispersion);
    get("lake_depth", &p.lake_depth);
    get("temperature_c", &p.temperature_c);
    if (u["decay"]) {
      for (const auto& kv : u["decay"]) {
        const std::string sp = doc.Key(kv.first, "uncertainty.decay");
        p.decay[sp] = ReadUncertain(doc, kv.second, "uncertainty.decay." + sp);
      }
    }
  }
  std::string error;
  if (!p.IsValid(&error)) throw ConfigError(Located(path, 0, "", error));
  return p;
}

}  // namespace qingshui::calibration
