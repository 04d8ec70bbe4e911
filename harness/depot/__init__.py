"""Depot DLB through OCPP 2.0.1 smart charging, both directions (issue 5, items 3–5).

- `run`: the CSMS under test — the harness plays every charger of a depot scenario (one
  websocket each, `stations`), trucks arrive and leave per the scenario, and
  `smart.depot_sim.replay` judges what the chargers deliver under the CSMS's
  SetChargingProfile decisions (every invariant, every step; KPIs).
- `charger`: the charger under test — the harness plays the CSMS, sets the site limit with
  ChargingStationMaxProfile / ChargingStationExternalConstraints and checks what the
  chargers draw in their meter values.
- `artifacts`: KPIs JSON, violations, the decision log and PNG plots of a run.
- `step`: the `depot:` step of YAML test cases (TC_DEPOT_*).
"""
