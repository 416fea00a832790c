"""mutate.py SRC_DASHBOARDS_DIR DST_DIR - a copy of dashboards/ with one
instance of each mistake the schema test and the lint must catch, so both
are shown to fail (see schema.sh and lint.sh)."""
import json
import os
import shutil
import sys

src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
path = os.path.join(dst, "grafana", "leakscope.json")
d = json.load(open(path))
panels = [p for p in d["panels"] if p["type"] != "row"]
# schema: a misspelt field and an out-of-range enum
panels[0]["fieldconfig"] = panels[0].pop("fieldConfig")
d["templating"]["list"][1]["refresh"] = 7
# lint: a rate over a fixed window, a missing unit, a hard-coded instance,
# a duplicate id, a missing description, a missing variable
panels[1]["targets"][0]["expr"] = panels[1]["targets"][0]["expr"].replace("$__rate_interval", "5m")
del panels[2]["fieldConfig"]["defaults"]["unit"]
panels[3]["targets"][0]["expr"] = 'leakscope_fds_open{job=~"$job", instance="10.0.0.1:9464"}'
panels[4]["id"] = panels[3]["id"]
panels[5]["description"] = ""
d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "role"]
json.dump(d, open(path, "w"), indent=2)
