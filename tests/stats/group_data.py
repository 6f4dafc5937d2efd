"""Design of the group tests: the mission's windows conditions and contrasts, HC vs MDD."""

CONDITIONS = {"rejbase": {"task": "rejection", "window": [5, 45]},
              "rejection": {"task": "rejection", "window": [45, 90]},
              "accbase": {"task": "acceptance", "window": [5, 45]},
              "acceptance": {"task": "acceptance", "window": [45, 90]}}
CONTRASTS = {"rejection": {"baseline": "rejbase", "condition": "rejection"},
             "acceptance": {"baseline": "accbase", "condition": "acceptance"},
             "rejvsacc": {"baseline": "rejbase", "condition": "rejection",
                          "control": "acceptance"}}
GROUPS = {"column": "group", "levels": ["HC", "MDD"]}
