// Command loadgen-go is the open-loop load generator of Padlock's benchmark:
// the same job and result as bench/loadgen.mjs in open mode, with sends that
// leave on time. A Node.js generator sends on 1 ms timer ticks, and the
// responses it timestamps wait behind its own event loop and garbage
// collector, which on two cores put its floor at a p99 of 6-10 ms even
// against a bare node:http server at 40 % of that server's capacity. Here a
// dispatcher thread sleeps with nanosleep to each intended send time, and
// each connection's goroutine timestamps its answer as it reads it.
//
// It reads one job (JSON) on stdin, runs it, writes one result (JSON) on
// stdout and exits. The requests come ready-made from bench/run.mjs in a file
// of records: kind index (1 byte), length (4 bytes, little-endian), the bytes
// of one HTTP/1.1 request. Latencies count from the intended send time, so a
// slow answer delays no later request (no coordinated omission); histograms
// use the buckets of bench/lib/histogram.mjs, so the two merge and report alike.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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
	mu        sync.Mutex
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
	r.mu.Lock()
	defer r.mu.Unlock()
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
	r.mu.Lock()
	r.errors[reason]++
	r.mu.Unlock()
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

var contentLength = []byte("content-length:")
var connectionClose = []byte("connection: close")
var chunked = []byte("transfer-encoding: chunked")

// readResponse reads one answer (framed by content-length or chunked); closeAfter reports Connection: close.
func readResponse(r *bufio.Reader) (status int, closeAfter bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("bad status line")
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line")
	}
	length := -1
	isChunked := false
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > len(contentLength) && bytes.EqualFold(line[:len(contentLength)], contentLength) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(line[len(contentLength):])))
			if err != nil {
				return 0, false, fmt.Errorf("bad content-length")
			}
		} else if len(line) >= len(connectionClose) && bytes.EqualFold(line[:len(connectionClose)], connectionClose) {
			closeAfter = true
		} else if len(line) >= len(chunked) && bytes.EqualFold(line[:len(chunked)], chunked) {
			isChunked = true
		}
	}
	if isChunked {
		return status, closeAfter, skipChunks(r)
	}
	if length < 0 {
		return 0, false, fmt.Errorf("answer without content-length")
	}
	if _, err = r.Discard(length); err != nil {
		return 0, false, err
	}
	return status, closeAfter, nil
}

// skipChunks reads a chunked body to its end, trailers included.
func skipChunks(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		hex := bytes.TrimSpace(line)
		if i := bytes.IndexByte(hex, ';'); i >= 0 {
			hex = hex[:i]
		}
		size, err := strconv.ParseUint(string(hex), 16, 32)
		if err != nil {
			return fmt.Errorf("bad chunk size")
		}
		if size == 0 {
			break
		}
		if _, err = r.Discard(int(size) + 2); err != nil {
			return err
		}
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// sleepUntil sleeps with nanosleep (microsecond precision; Go's own timers wake up to 1 ms late when idle).
func sleepUntil(t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}

func run(j job) (map[string]any, error) {
	requests, err := readRequests(j.RequestsFile)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(j.Host, strconv.Itoa(j.Port))
	timeout := time.Duration(j.TimeoutMs * float64(time.Millisecond))
	rec := &recorder{latency: newHistogram(), service: newHistogram(), lag: newHistogram(),
		byKind: map[string]*histogram{}, statuses: map[string]int{}, errors: map[string]int{}}
	queue := make(chan item, 1<<22)
	var wg sync.WaitGroup
	var connMu sync.Mutex
	conns := map[net.Conn]bool{}
	opened := 0
	idle := 0               // connection goroutines waiting for an item
	var givenUp atomic.Bool // past the grace period: what is still queued is left unsent

	t0 := time.Now().Add(20 * time.Millisecond)
	windowStart := t0.Add(time.Duration(j.WarmupS * float64(time.Second)))
	scheduleEnd := windowStart.Add(time.Duration(j.DurationS * float64(time.Second)))
	measured := func(it item) bool { return !it.intended.Before(windowStart) }

	var worker func()
	startConn := func() {
		connMu.Lock()
		opened++
		connMu.Unlock()
		wg.Add(1)
		go worker()
	}
	worker = func() {
		defer wg.Done()
		var c net.Conn
		var r *bufio.Reader
		drop := func() {
			if c != nil {
				connMu.Lock()
				delete(conns, c)
				connMu.Unlock()
				c.Close()
				c = nil
			}
		}
		defer drop()
		for {
			connMu.Lock()
			idle++
			connMu.Unlock()
			it, more := <-queue
			connMu.Lock()
			idle--
			connMu.Unlock()
			if !more || givenUp.Load() {
				return
			}
			kind := j.Kinds[it.req.kind]
			if time.Since(it.intended) > timeout {
				// Given up unsent, as the Node.js generator does: it waited past its timeout for a connection.
				if measured(it) {
					rec.error("timeout")
				}
				continue
			}
			if c == nil {
				nc, err := net.DialTimeout("tcp", addr, timeout)
				if err != nil {
					if measured(it) {
						rec.error("socket: " + err.Error())
					}
					continue
				}
				nc.(*net.TCPConn).SetNoDelay(true)
				connMu.Lock()
				conns[nc] = true
				connMu.Unlock()
				c, r = nc, bufio.NewReaderSize(nc, 64*1024)
			}
			sent := time.Now()
			_ = c.SetDeadline(sent.Add(timeout))
			var status int
			var closeAfter bool
			_, err := c.Write(it.req.bytes)
			if err == nil {
				status, closeAfter, err = readResponse(r)
			}
			done := time.Now()
			if err != nil {
				if measured(it) {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						rec.error("timeout")
					} else {
						rec.error("socket: " + err.Error())
					}
				}
				drop()
				continue
			}
			if measured(it) {
				rec.response(kind, status, done.Sub(it.intended), done.Sub(sent), it.dispatched.Sub(it.intended))
			}
			if closeAfter {
				drop()
			}
		}
	}

	for i := 0; i < j.Connections; i++ {
		startConn()
	}
	cpu0 := cpuSeconds()
	wall0 := time.Now()

	random := rand.New(rand.NewSource(j.Seed))
	poisson := j.Arrivals != "uniform"
	gap := float64(time.Second) / j.Rate
	next := t0
	scheduled, sent, k := 0, 0, 0
	exhausted := false
	runtime.LockOSThread()
	for next.Before(scheduleEnd) && !exhausted {
		sleepUntil(next)
		now := time.Now()
		for !next.After(now) && next.Before(scheduleEnd) {
			if k == len(requests) {
				if !j.Cycle {
					exhausted = true
					break
				}
				k = 0
			}
			it := item{req: requests[k], intended: next, dispatched: now}
			k++
			if measured(it) {
				scheduled++
			}
			sent++
			queue <- it
			if poisson {
				next = next.Add(time.Duration(-math.Log(1-random.Float64()) * gap))
			} else {
				next = next.Add(time.Duration(gap))
			}
		}
		// Every connection busy and requests waiting: open another, up to the limit.
		connMu.Lock()
		more := idle == 0 && len(queue) > 0 && opened < j.MaxConnections
		connMu.Unlock()
		if more {
			startConn()
		}
	}
	runtime.UnlockOSThread()
	close(queue)

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Duration(j.GraceMs * float64(time.Millisecond))):
		givenUp.Store(true)
		connMu.Lock()
		for c := range conns {
			c.Close()
		}
		connMu.Unlock()
		<-finished
	}
	wall := time.Since(wall0).Seconds()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Requests scheduled in the window that got neither an answer nor an error by the end.
	errs := 0
	for _, n := range rec.errors {
		errs += n
	}
	if unfinished := scheduled - rec.completed - errs; unfinished > 0 {
		rec.errors["unfinished"] += unfinished
	}
	if exhausted {
		rec.errors["requests exhausted"]++
	}
	return map[string]any{
		"mode":              "open",
		"generator":         "go",
		"offeredRate":       j.Rate,
		"arrivals":          map[bool]string{true: "poisson", false: "uniform"}[poisson],
		"windowS":           j.DurationS,
		"scheduled":         scheduled,
		"sent":              sent,
		"connectionsOpened": opened,
		"completed":         rec.completed,
		"ok":                rec.ok,
		"statuses":          rec.statuses,
		"errors":            rec.errors,
		"latency":           rec.latency,
		"service":           rec.service,
		"lag":               rec.lag,
		"byKind":            rec.byKind,
		"loadgenCpuPercent": math.Round((cpuSeconds() - cpu0) / wall * 100),
	}, nil
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
