# inserts.py OUT - the sqlite3 workload of bench/real: a table with an index
# and 20,000 inserts in one transaction, then a query over them.
import sys

with open(sys.argv[1], "w") as f:
    f.write("create table t(id integer primary key, name text, v real);\n"
            "create index t_name on t(name);\nbegin;\n")
    for i in range(20000):
        f.write(f"insert into t(name, v) values('name{i % 977}', {i * 0.5});\n")
    f.write("commit;\nselect count(*), sum(v) from t;\n")
