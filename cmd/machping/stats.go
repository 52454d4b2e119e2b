package main

import (
	"math"
	"slices"
	"time"
)

// latencies summarises round-trip times as ping(8) does (min/avg/max/mdev), plus percentiles,
// which say more than a mean on a noisy machine.
type latencies struct {
	samples []time.Duration
}

func (l *latencies) add(d time.Duration) { l.samples = append(l.samples, d) }

// summary is the statistics of a set of round trips, in milliseconds to a tenth of a
// microsecond.
type summary struct {
	Count int     `json:"count"`
	Min   float64 `json:"min_ms"`
	Avg   float64 `json:"avg_ms"`
	Max   float64 `json:"max_ms"`
	Mdev  float64 `json:"mdev_ms"` // standard deviation, as ping(8)'s mdev
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

func (l *latencies) summary() summary {
	n := len(l.samples)
	if n == 0 {
		return summary{}
	}
	sorted := slices.Clone(l.samples)
	slices.Sort(sorted)
	var sum, sumSq float64
	for _, d := range sorted {
		ms := millis(d)
		sum += ms
		sumSq += ms * ms
	}
	avg := sum / float64(n)
	variance := max(sumSq/float64(n)-avg*avg, 0)
	return summary{
		Count: n,
		Min:   millis(sorted[0]),
		Avg:   round4(avg),
		Max:   millis(sorted[n-1]),
		Mdev:  round4(math.Sqrt(variance)),
		P50:   millis(percentile(sorted, 50)),
		P99:   millis(percentile(sorted, 99)),
	}
}

// percentile returns the nearest-rank percentile of sorted samples: the smallest sample that at
// least p percent of the samples do not exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// millis converts to milliseconds rounded to a tenth of a microsecond.
func millis(d time.Duration) float64 { return round4(float64(d) / float64(time.Millisecond)) }

func round4(x float64) float64 { return math.Round(x*10000) / 10000 }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
