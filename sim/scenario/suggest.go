package scenario

import (
	"slices"
	"strings"
)

// suggest returns the candidate nearest to word when it is close enough to be a likely
// typo, or "". Comparison ignores case; ties go to the alphabetically first candidate.
func suggest(word string, candidates []string) string {
	if word == "" || len(word) > 64 {
		return ""
	}
	limit := 1
	switch {
	case len(word) >= 9:
		limit = 3
	case len(word) >= 4:
		limit = 2
	}
	w := strings.ToLower(word)
	best, bestD := "", limit+1
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		if c == word || len(c) > 64 {
			continue
		}
		if d := distance(w, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance between a and b: the number of
// insertions, deletions, substitutions and transpositions of adjacent bytes needed to turn
// one into the other.
func distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
