# benchtable.awk turns `go test -bench` output into the one table `make bench` prints:
# a row per benchmark, its figures as "value unit", the end-to-end figures first in a fixed
# order. Allocation figures of the end-to-end benchmarks (one search per "op") are left out.
# Failures are listed after the table. Usage: awk -v raw=FILE -f .ci/benchtable.awk FILE

BEGIN {
	n = split("msgs/s cpu-s/Mmsg ref-msgs/s cpu-s/Mmsg@ref broker-cpu-s/Mmsg@ref p99-µs conns conns/s B/conn rss-B/conn broker-B/conn", first, " ")
	printf "%-13s %-40s %s\n", "package", "benchmark", "figures"
}

/^pkg: / {
	pkg = $2
	sub(/^github\.com\/fleetsim\/fleetsim\//, "", pkg)
}

/^Benchmark[^ \t]+[ \t]+[0-9]+[ \t]/ {
	name = $1
	sub(/^Benchmark/, "", name)
	sub(/-[0-9]+$/, "", name)
	delete val
	order = ""
	for (i = 3; i < NF; i += 2) {
		val[$(i + 1)] = $i
		order = order " " $(i + 1)
	}
	e2e = ("msgs/s" in val) || ("conns" in val)
	out = ""
	for (k = 1; k <= n; k++) {
		if (first[k] in val) {
			out = out sprintf("  %s %s", val[first[k]], first[k])
			delete val[first[k]]
		}
	}
	m = split(order, units, " ")
	for (k = 1; k <= m; k++) {
		u = units[k]
		if (!(u in val) || (e2e && (u == "B/op" || u == "allocs/op"))) {
			continue
		}
		out = out sprintf("  %s %s", val[u], u)
	}
	printf "%-13s %-40s%s\n", pkg, name, out
}

/^--- FAIL|^FAIL|^panic:|--- SKIP/ {
	problems = problems "  " $0 "\n"
}

END {
	if (problems != "") {
		printf "\nnot all benchmarks ran (details in %s):\n%s", raw, problems
	}
}
