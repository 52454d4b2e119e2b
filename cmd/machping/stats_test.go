package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2), 50, 1 * time.Millisecond},
		{ms(1, 2, 3), 50, 2 * time.Millisecond},
		{ms(hundred...), 50, 50 * time.Millisecond},
		{ms(hundred...), 99, 99 * time.Millisecond},
		{ms(hundred...), 100, 100 * time.Millisecond},
		{ms(hundred...), 0, 1 * time.Millisecond},
	} {
		require.Equal(t, tc.want, percentile(tc.sorted, tc.p), "p%v of %v", tc.p, tc.sorted)
	}
}

func TestSummary(t *testing.T) {
	var l latencies
	require.Equal(t, summary{}, l.summary())
	for _, d := range []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond} {
		l.add(d)
	}
	// mean 2, deviations -1, 1, 0, 0: variance 0.5
	require.Equal(t, summary{Count: 4, Min: 1, Avg: 2, Max: 3, Mdev: 0.7071, P50: 2, P99: 3}, l.summary())
	l = latencies{}
	l.add(1550 * time.Nanosecond)
	require.Equal(t, summary{Count: 1, Min: 0.0016, Avg: 0.0016, Max: 0.0016, P50: 0.0016, P99: 0.0016}, l.summary())
}
