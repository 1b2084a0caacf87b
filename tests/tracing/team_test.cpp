// Recommendations anywhere, for a team in the field (issue #16 "Recommendations anywhere",
// issue #21 item 2; docs/tracing.md §7, "A team in the field"): with `team_at`, river points
// every 1 km below the leading candidates are places a sample may be recommended at, beside
// the stations; only places the team can reach by then count; `within` defaults to 2 h; a
// bad place is a ConfigError naming the field.
//
// The drill: a 10-hour release of 4000 kg COD at the Chuhou plant (Sushui, km 152), routine
// 4-hourly samples at the sections. On the reach sushui_linyi four outfalls (km 140, 145,
// 152, 165) lie above the first station (km 175), so no station separates them: at the
// alarm the tracer's leaders are neighbouring outfalls there, and only a sample between
// them tells whose plume it is (water above an outfall carries none of its release).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "qingshui/core/error.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"
#include "tracing_fixtures.h"

namespace qingshui::tracing {
namespace {

using fixtures::Default;  // tests/tracing/tracing_fixtures.h
using fixtures::Priors;

const ScenarioRun& ChuhouRun() {
  static const ScenarioRun run = RunScenario(Default(), ParseScenario(R"(
start: 2024-04-15T00:00+08:00
end: 2024-04-17T04:00+08:00
hydrology: {velocity_factor: 1.1, dispersion_factor: 0.7}
events:
  - {source: chuhou_wwtp, start: 2024-04-16T02:00+08:00, duration_h: 10,
     mass_kg: {COD: 4000, NH3N: 120, TP: 30}}
sampling: {interval_h: 4, noise: 0.1, seed: 7, stations: sections}
)",
                                                                      "chuhou.yaml", Default()));
  return run;
}

ObservationSet ChuhouObservations() {
  ObservationSet obs;
  obs.rows = ChuhouRun().observations;
  return obs;
}

double At(const std::string& iso) {
  double t = 0;
  EXPECT_TRUE(ParseIsoTime(iso, &t)) << iso;
  return t;
}

TraceOptions Team(const std::string& at, double speed_kmh = 30.0) {
  TraceOptions o;
  o.priors = Priors();
  o.team_at = at;
  o.team_speed_kmh = speed_kmh;
  return o;
}

// Registered leaders on sushui_linyi and their km.
std::map<std::string, double> LinyiOutfalls() {
  std::map<std::string, double> km;
  for (const auto& s : Default().sources) {
    if (s.reach == "sushui_linyi") km[s.id] = s.km;
  }
  return km;
}

TEST(TeamInTheField, APointBetweenNeighbouringOutfallsSeparatesThem) {
  const double now = At("2024-04-17T04:00+08:00");
  const TraceResult r = Trace(Default(), ChuhouObservations(), Team("sushui_linyi_yongji"));
  const auto outfalls = LinyiOutfalls();
  // The leaders: outfalls on the reach, no source near certainty.
  ASSERT_GE(r.hypotheses.size(), 2u);
  EXPECT_LT(r.hypotheses[0].probability, 0.9);
  std::vector<double> leader_km;
  for (size_t i = 0; i < r.hypotheses.size() && i < 4; ++i) {
    auto it = outfalls.find(r.hypotheses[i].label);
    if (it != outfalls.end()) leader_km.push_back(it->second);
  }
  ASSERT_GE(leader_km.size(), 2u) << r.hypotheses[0].label;
  std::sort(leader_km.begin(), leader_km.end());
  // No station on the reach between the leaders.
  for (const auto& st : Default().stations) {
    if (st.reach == "sushui_linyi") EXPECT_GT(st.km, leader_km.back());
  }
  ASSERT_FALSE(r.next_samples.empty());
  const SampleRecommendation& top = r.next_samples[0];
  ASSERT_TRUE(top.IsPoint()) << top.station;
  EXPECT_EQ(top.reach, "sushui_linyi");
  EXPECT_GT(top.km, leader_km.front());
  EXPECT_LT(top.km, leader_km.back());
  EXPECT_DOUBLE_EQ(top.km, std::round(top.km));  // every 1 km
  EXPECT_TRUE(top.within_window);
  EXPECT_GT(top.time_s, now);
  EXPECT_LE(top.time_s, now + 2 * 3600.0 + 1);  // within defaults to 2 h with a team
  // It separates them: an outfall below the point puts nothing there, one above does.
  double lo = INFINITY, hi = 0.0;
  for (const auto& [label, pred] : top.predictions) {
    lo = std::min(lo, pred.at("COD"));
    hi = std::max(hi, pred.at("COD"));
  }
  EXPECT_GT(hi - lo, 0.3 * lo) << "COD predictions " << lo << " to " << hi;
  // And far better than any station the team could reach then.
  TraceOptions stations_only;
  stations_only.priors = Priors();
  stations_only.recommend_within_s = 2 * 3600.0;
  const TraceResult s = Trace(Default(), ChuhouObservations(), stations_only);
  EXPECT_EQ(s.hypotheses[0].label, r.hypotheses[0].label);
  EXPECT_DOUBLE_EQ(s.hypotheses[0].probability, r.hypotheses[0].probability);
  for (const auto& n : s.next_samples) {
    EXPECT_FALSE(n.IsPoint());
    EXPECT_LT(n.expected_information_nats, 0.5 * top.expected_information_nats);
  }
  // Point entries in the JSON name reach and km instead of a station.
  const std::string json = TraceResultJson(r);
  EXPECT_NE(json.find("{\"reach\": \"sushui_linyi\", \"km\": "), std::string::npos);
  EXPECT_NE(json.find("\"team_distance_km\": "), std::string::npos);
  EXPECT_NE(json.find("\"team\": {\"at\": \"sushui_linyi_yongji\", \"speed_kmh\": 30, "
                      "\"within_h\": 2}"),
            std::string::npos);
  EXPECT_EQ(TraceResultJson(s).find("\"team\""), std::string::npos);
}

TEST(TeamInTheField, OnlyPlacesTheTeamCanReachByThen) {
  const double now = At("2024-04-17T04:00+08:00");
  const Reach& linyi = *Default().FindReach("sushui_linyi");
  const Reach& yaoxian = *Default().FindReach("yaoxian");
  struct Case {
    std::string at;
    double speed;
  };
  for (const Case& c :
       {Case{"sushui_linyi_yongji", 30}, Case{"sushui_linyi_yongji", 6}, Case{"yaoxian:25", 30}}) {
    SCOPED_TRACE(c.at + " at " + std::to_string(c.speed) + " km/h");
    const TraceResult r = Trace(Default(), ChuhouObservations(), Team(c.at, c.speed));
    ASSERT_FALSE(r.next_samples.empty()) << r.next_samples_note;
    for (const auto& n : r.next_samples) {
      ASSERT_TRUE(std::isfinite(n.team_distance_km));
      // Travel along the rivers at the team's speed fits before the sample's time.
      EXPECT_LE(n.team_distance_km / c.speed * 3600.0, n.time_s - now + 1e-6)
          << (n.IsPoint() ? PointLabel(n.reach, n.km) : n.station);
      if (!n.IsPoint() || n.reach != "sushui_linyi") continue;
      // The distance: down the reach from the station, or from the Yaoxian through Wuxing
      // Lake (no length) and up the Sushui.
      const double expected = c.at == "yaoxian:25"
                                  ? (yaoxian.end_km() - 25) + (linyi.end_km() - n.km)
                                  : std::abs(175.0 - n.km);
      EXPECT_NEAR(n.team_distance_km, expected, 1e-9);
    }
  }
  // A slow team 2 h away: the place within 12 km, the top no nearer in time than travel.
  const TraceResult slow = Trace(Default(), ChuhouObservations(), Team("sushui_linyi:160", 6));
  for (const auto& n : slow.next_samples) {
    if (n.within_window) EXPECT_LE(n.team_distance_km, 12.0 + 1e-9);
  }
  // A team on the Fen drains to another outlet: no place on the Sushui is reachable along
  // the rivers, and the note says that none the team can take separates the leaders.
  const TraceResult fen = Trace(Default(), ChuhouObservations(), Team("fen_lower:55"));
  for (const auto& n : fen.next_samples) EXPECT_TRUE(std::isfinite(n.team_distance_km));
  bool on_sushui = false;
  for (const auto& n : fen.next_samples)
    on_sushui = on_sushui || n.reach.rfind("sushui", 0) == 0 || n.station.rfind("sushui", 0) == 0;
  EXPECT_FALSE(on_sushui);
  if (fen.next_samples.empty()) {
    EXPECT_NE(fen.next_samples_note.find("no sample the team (at fen_lower:55, 30 km/h)"),
              std::string::npos)
        << fen.next_samples_note;
  }
}

TEST(TeamInTheField, ABadPlaceOrSpeedIsAConfigErrorNamingTheField) {
  ObservationSet obs;
  for (const auto& o : ChuhouRun().observations) {
    if (o.time_s <= At("2024-04-16T00:00+08:00")) obs.rows.push_back(o);
  }
  struct Case {
    std::string at;
    double speed;
    std::string message;
  };
  for (const Case& c : {
           Case{"no_such_station", 30, "team_at: unknown station 'no_such_station'"},
           Case{"no_such_reach:12", 30, "team_at: unknown reach 'no_such_reach'"},
           Case{"sushui_linyi:500", 30, "team_at: km 500 is outside reach sushui_linyi"},
           Case{"sushui_linyi:abc", 30, "team_at: malformed km 'abc'"},
           Case{"sushui_linyi:", 30, "team_at: malformed km ''"},
           Case{"sushui_linyi_yongji", 0, "team_speed_kmh: expected a speed > 0"},
           Case{"sushui_linyi_yongji", NAN, "team_speed_kmh: expected a speed > 0"},
       }) {
    SCOPED_TRACE(c.at);
    try {
      Trace(Default(), obs, Team(c.at, c.speed));
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
    if (c.speed > 0) {
      try {
        CheckTeamAt(Default(), c.at, "--team-at");
        ADD_FAILURE() << "no error";
      } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()).rfind("--team-at: ", 0), 0u) << e.what();
      }
    }
  }
  EXPECT_NO_THROW(CheckTeamAt(Default(), "sushui_linyi:152.5"));
  EXPECT_NO_THROW(CheckTeamAt(Default(), "zhangliuzhuang"));
}

}  // namespace
}  // namespace qingshui::tracing
