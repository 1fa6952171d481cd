// Command loadgen-go is the open-loop load generator of Padlock's benchmark:
// the same job and result as bench/loadgen.mjs in open mode, with sends that
// leave on time. A Node.js generator sends on 1 ms timer ticks, and the
// responses it timestamps wait behind its own event loop and garbage
// collector, which on two cores put its floor at a p99 of 6-10 ms even
// against a bare node:http server at 40 % of that server's capacity. Here one
// thread runs an event loop (loop.go): it sleeps in epoll_pwait2 until the next
// intended send time or an answer, and timestamps answers as it reads them.
//
// It reads one job (JSON) on stdin, runs it, writes one result (JSON) on
// stdout and exits. The requests come ready-made from bench/run.mjs in a file
// of records: kind index (1 byte), length (4 bytes, little-endian), the bytes
// of one HTTP/1.1 request. Latencies count from the intended send time, so a
// slow answer delays no later request (no coordinated omission); histograms
// use the buckets of bench/lib/histogram.mjs, so the two merge and report alike.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"
)

type job struct {
	Host           string   `json:"host"`
	Port           int      `json:"port"`
	Rate           float64  `json:"rate"`
	DurationS      float64  `json:"durationS"`
	WarmupS        float64  `json:"warmupS"`
	GraceMs        float64  `json:"graceMs"`
	TimeoutMs      float64  `json:"timeoutMs"`
	Connections    int      `json:"connections"`
	MaxConnections int      `json:"maxConnections"`
	Arrivals       string   `json:"arrivals"`
	Seed           int64    `json:"seed"`
	RequestsFile   string   `json:"requestsFile"`
	Kinds          []string `json:"kinds"`
	// Cycle: start the requests over when they run out (reads); otherwise stop sending (writes must not repeat).
	Cycle bool `json:"cycle"`
}

type request struct {
	kind  uint8
	bytes []byte
}

type item struct {
	req        request
	intended   time.Time
	dispatched time.Time
}

// Histogram buckets, as bench/lib/histogram.mjs: exact below 256 us, then 128 per power of two.
const (
	subBits = 8
	sub     = 1 << subBits
	half    = sub >> 1
	maxUs   = 1<<32 - 1
	buckets = (32-subBits+1)*half + half
)

func bucketOf(us uint32) int {
	if us < sub {
		return int(us)
	}
	msb := 31 - clz32(us)
	shift := msb - (subBits - 1)
	return shift*half + int(us>>uint(shift))
}

func clz32(v uint32) int {
	n := 0
	for bit := uint32(1) << 31; bit != 0 && v&bit == 0; bit >>= 1 {
		n++
	}
	return n
}

type histogram struct {
	counts [buckets]float64
	count  float64
	sumUs  float64
	minUs  float64
	maxUs  float64
}

func newHistogram() *histogram { return &histogram{minUs: math.Inf(1)} }

func (h *histogram) record(d time.Duration) {
	us := math.Round(float64(d) / float64(time.Microsecond))
	if us < 0 {
		us = 0
	}
	if us > maxUs {
		us = maxUs
	}
	h.counts[bucketOf(uint32(us))]++
	h.count++
	h.sumUs += us
	h.minUs = math.Min(h.minUs, us)
	h.maxUs = math.Max(h.maxUs, us)
}

func (h *histogram) MarshalJSON() ([]byte, error) {
	pairs := [][2]float64{}
	for i, n := range h.counts {
		if n > 0 {
			pairs = append(pairs, [2]float64{float64(i), n})
		}
	}
	minUs := h.minUs
	if h.count == 0 {
		minUs = 0
	}
	return json.Marshal(map[string]any{"count": h.count, "sumUs": h.sumUs, "minUs": minUs, "maxUs": h.maxUs, "buckets": pairs})
}

type recorder struct {
	latency   *histogram
	service   *histogram
	lag       *histogram
	byKind    map[string]*histogram
	statuses  map[string]int
	errors    map[string]int
	completed int
	ok        int
}

func (r *recorder) response(kind string, status int, latency, service, lag time.Duration) {
	r.completed++
	r.statuses[strconv.Itoa(status)]++
	if status >= 200 && status < 300 {
		r.ok++
	}
	r.latency.record(latency)
	r.service.record(service)
	r.lag.record(lag)
	h := r.byKind[kind]
	if h == nil {
		h = newHistogram()
		r.byKind[kind] = h
	}
	h.record(latency)
}

func (r *recorder) error(reason string) {
	r.errors[reason]++
}

func readRequests(path string) ([]request, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []request
	for len(data) > 0 {
		if len(data) < 5 {
			return nil, errors.New("truncated requests file")
		}
		n := int(binary.LittleEndian.Uint32(data[1:5]))
		if len(data) < 5+n {
			return nil, errors.New("truncated requests file")
		}
		out = append(out, request{kind: data[0], bytes: data[5 : 5+n]})
		data = data[5+n:]
	}
	if len(out) == 0 {
		return nil, errors.New("no requests")
	}
	return out, nil
}

func main() {
	// "loadgen-go buckets v...": the histogram bucket of each value (us), for the test that holds the
	// buckets equal to bench/lib/histogram.mjs's.
	if len(os.Args) > 1 && os.Args[1] == "buckets" {
		for _, arg := range os.Args[2:] {
			v, err := strconv.ParseUint(arg, 10, 32)
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen-go: not a value in us:", arg)
				os.Exit(2)
			}
			fmt.Println(bucketOf(uint32(v)))
		}
		return
	}
	var j job
	input, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = json.Unmarshal(input, &j)
	}
	if err == nil && (j.Rate <= 0 || j.Connections < 1 || j.MaxConnections < j.Connections || len(j.Kinds) == 0) {
		err = errors.New("job needs rate > 0, connections >= 1, maxConnections >= connections and kinds")
	}
	var result map[string]any
	if err == nil {
		result, err = run(j)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen-go:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(result)
	os.Stdout.Write(append(out, '\n'))
}
