package main

import (
	"bytes"
	"errors"
	"math"
	"math/rand"
	"net"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// The generator is one thread running an event loop over non-blocking sockets and epoll, as a C
// load generator would: no goroutine per connection, so no scheduler wake-ups and futexes per
// request. The first version (a goroutine per connection, as net.Conn invites) spent about 17 us of
// CPU per request on two cores, more than the server it measured; this one spends a few, and the
// server keeps the core it would otherwise share.

const sysEpollPwait2 = 441 // epoll_pwait2 (Linux 5.11): a timeout in nanoseconds, not milliseconds

type conn struct {
	fd         int
	connected  bool
	busy       bool
	it         item
	sent       time.Time
	out        []byte // the rest of a request a full socket buffer did not take
	in         []byte // what was read of the current answer
	closeAfter bool
}

// parseAnswer looks for one whole answer at the start of b: its length, status and whether it
// asks to close; n == 0 when more bytes are needed, err when it cannot be framed.
func parseAnswer(b []byte) (n, status int, closeAfter bool, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > 64*1024 {
			return 0, 0, false, errors.New("answer head too large")
		}
		return 0, 0, false, nil
	}
	head := b[:end]
	if len(head) < 12 || !bytes.HasPrefix(head, []byte("HTTP/1.")) {
		return 0, 0, false, errors.New("bad status line")
	}
	for _, c := range head[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, false, errors.New("bad status line")
		}
		status = status*10 + int(c-'0')
	}
	length := -1
	isChunked := false
	for rest := head; len(rest) > 0; {
		line := rest
		if i := bytes.Index(rest, []byte("\r\n")); i >= 0 {
			line, rest = rest[:i], rest[i+2:]
		} else {
			rest = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			length = 0
			for _, c := range value {
				if c < '0' || c > '9' {
					return 0, 0, false, errors.New("bad content-length")
				}
				length = length*10 + int(c-'0')
			}
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			isChunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("connection")):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		}
	}
	at := end + 4
	if isChunked {
		for {
			eol := bytes.Index(b[at:], []byte("\r\n"))
			if eol < 0 {
				return 0, 0, false, nil
			}
			sizeText := b[at : at+eol]
			if i := bytes.IndexByte(sizeText, ';'); i >= 0 {
				sizeText = sizeText[:i]
			}
			size, perr := strconv.ParseUint(string(bytes.TrimSpace(sizeText)), 16, 32)
			if perr != nil {
				return 0, 0, false, errors.New("bad chunk size")
			}
			at += eol + 2
			if size == 0 {
				// Trailers, then an empty line.
				for {
					eol = bytes.Index(b[at:], []byte("\r\n"))
					if eol < 0 {
						return 0, 0, false, nil
					}
					at += eol + 2
					if eol == 0 {
						return at, status, closeAfter, nil
					}
				}
			}
			if len(b) < at+int(size)+2 {
				return 0, 0, false, nil
			}
			at += int(size) + 2
		}
	}
	if length < 0 {
		return 0, 0, false, errors.New("answer without content-length")
	}
	if len(b) < at+length {
		return 0, 0, false, nil
	}
	return at + length, status, closeAfter, nil
}

func epollWait(epfd int, events []syscall.EpollEvent, timeout time.Duration) (int, error) {
	if timeout < 0 {
		timeout = 0
	}
	ts := syscall.NsecToTimespec(int64(timeout))
	n, _, errno := syscall.Syscall6(sysEpollPwait2, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	if errno == syscall.ENOSYS {
		// Older kernels: millisecond timeouts, rounded up (sends may then leave up to 1 ms late).
		return syscall.EpollWait(epfd, events, int((timeout+time.Millisecond-1)/time.Millisecond))
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func run(j job) (map[string]any, error) {
	requests, err := readRequests(j.RequestsFile)
	if err != nil {
		return nil, err
	}
	ips, err := net.LookupIP(j.Host)
	if err != nil || len(ips) == 0 || ips[0].To4() == nil {
		return nil, errors.New("host must resolve to an IPv4 address")
	}
	var addr syscall.SockaddrInet4
	copy(addr.Addr[:], ips[0].To4())
	addr.Port = j.Port
	timeout := time.Duration(j.TimeoutMs * float64(time.Millisecond))

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Timer slack of 1 us instead of 50 us: sleeps end when asked.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 29 /* PR_SET_TIMERSLACK */, 1000, 0)
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(epfd)

	rec := &recorder{latency: newHistogram(), service: newHistogram(), lag: newHistogram(),
		byKind: map[string]*histogram{}, statuses: map[string]int{}, errors: map[string]int{}}
	byFd := map[int]*conn{}
	var idle []*conn
	var queue []item // waiting for a connection, oldest first
	queueHead := 0
	opened, live := 0, 0
	readBuf := make([]byte, 64*1024)
	events := make([]syscall.EpollEvent, 256)

	t0 := time.Now().Add(20 * time.Millisecond)
	windowStart := t0.Add(time.Duration(j.WarmupS * float64(time.Second)))
	scheduleEnd := windowStart.Add(time.Duration(j.DurationS * float64(time.Second)))
	measured := func(it item) bool { return !it.intended.Before(windowStart) }
	fail := func(it item, reason string) {
		if measured(it) {
			rec.error(reason)
		}
	}

	dial := func() (*conn, error) {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if err = syscall.Connect(fd, &addr); err != nil && err != syscall.EINPROGRESS {
			syscall.Close(fd)
			return nil, err
		}
		c := &conn{fd: fd, connected: err == nil}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | (1 << 31) /* EPOLLET */, Fd: int32(fd)}
		if err = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			syscall.Close(fd)
			return nil, err
		}
		byFd[fd] = c
		opened++
		live++
		return c, nil
	}
	closeConn := func(c *conn) {
		if _, ok := byFd[c.fd]; !ok {
			return
		}
		delete(byFd, c.fd)
		syscall.Close(c.fd)
		live--
		for i, x := range idle {
			if x == c {
				idle = append(idle[:i], idle[i+1:]...)
				break
			}
		}
	}
	// flush writes what is left of the request; false when the connection failed.
	flush := func(c *conn) bool {
		for len(c.out) > 0 {
			n, err := syscall.Write(c.fd, c.out)
			if err == syscall.EAGAIN {
				return true // EPOLLOUT (edge-triggered) says when to go on
			}
			if err != nil {
				fail(c.it, "socket: "+err.Error())
				closeConn(c)
				return false
			}
			c.out = c.out[n:]
		}
		return true
	}
	send := func(c *conn, it item) {
		c.busy, c.it, c.sent, c.out, c.in = true, it, time.Now(), it.req.bytes, c.in[:0]
		if c.connected {
			flush(c)
		}
	}
	// next hands a free connection the oldest waiting request still within its timeout.
	next := func(c *conn) {
		for queueHead < len(queue) {
			it := queue[queueHead]
			queue[queueHead] = item{}
			queueHead++
			if time.Since(it.intended) > timeout {
				fail(it, "timeout") // given up unsent, as the Node.js generator does
				continue
			}
			send(c, it)
			return
		}
		c.busy = false
		idle = append(idle, c)
	}
	lost := func(c *conn, reason string) {
		if c.busy {
			fail(c.it, reason)
		}
		closeConn(c)
	}

	for i := 0; i < j.Connections; i++ {
		c, err := dial()
		if err != nil {
			return nil, err
		}
		idle = append(idle, c)
	}
	cpu0 := cpuSeconds()
	wall0 := time.Now()
	random := rand.New(rand.NewSource(j.Seed))
	poisson := j.Arrivals != "uniform"
	gap := float64(time.Second) / j.Rate
	nextAt := t0
	scheduled, sentCount, k := 0, 0, 0
	exhausted := false
	lastSweep := time.Now()
	graceEnd := time.Time{}

	for {
		now := time.Now()
		// Arrivals whose time has come: to a free connection, else to the queue.
		for !exhausted && nextAt.Before(scheduleEnd) && !nextAt.After(now) {
			if k == len(requests) {
				if !j.Cycle {
					exhausted = true
					break
				}
				k = 0
			}
			it := item{req: requests[k], intended: nextAt, dispatched: now}
			k++
			if measured(it) {
				scheduled++
			}
			sentCount++
			if len(idle) > 0 {
				c := idle[len(idle)-1]
				idle = idle[:len(idle)-1]
				send(c, it)
			} else {
				queue = append(queue, it)
			}
			if poisson {
				nextAt = nextAt.Add(time.Duration(-math.Log(1-random.Float64()) * gap))
			} else {
				nextAt = nextAt.Add(time.Duration(gap))
			}
		}
		if queueHead > 4096 && queueHead*2 > len(queue) {
			queue = append(queue[:0], queue[queueHead:]...)
			queueHead = 0
		}
		// Every connection busy and requests waiting: open another, up to the limit.
		if queueHead < len(queue) && len(idle) == 0 && live < j.MaxConnections {
			if c, err := dial(); err == nil {
				next(c)
			}
		}
		scheduleDone := exhausted || !nextAt.Before(scheduleEnd)
		if scheduleDone && graceEnd.IsZero() {
			graceEnd = now.Add(time.Duration(j.GraceMs * float64(time.Millisecond)))
		}
		if scheduleDone {
			busy := queueHead < len(queue)
			for _, c := range byFd {
				busy = busy || c.busy
			}
			if !busy || now.After(graceEnd) {
				break
			}
		}
		// Requests on the wire past their timeout: the connection is closed (as the Node.js generator does).
		if now.Sub(lastSweep) > 50*time.Millisecond {
			lastSweep = now
			for _, c := range byFd {
				if c.busy && now.Sub(c.sent) > timeout {
					lost(c, "timeout")
				}
			}
		}
		wait := 50 * time.Millisecond
		if !scheduleDone {
			wait = min(wait, time.Until(nextAt))
		}
		n, err := epollWait(epfd, events, wait)
		if err != nil && err != syscall.EINTR {
			return nil, err
		}
		for _, ev := range events[:max(n, 0)] {
			c := byFd[int(ev.Fd)]
			if c == nil {
				continue
			}
			if !c.connected && ev.Events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
				if soErr, _ := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); soErr != 0 || ev.Events&syscall.EPOLLERR != 0 {
					lost(c, "socket: connect failed")
					continue
				}
				c.connected = true
			}
			if c.connected && ev.Events&syscall.EPOLLOUT != 0 && len(c.out) > 0 && !flush(c) {
				continue
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
				continue
			}
			// Edge-triggered: read until the socket is empty.
			for {
				r, err := syscall.Read(c.fd, readBuf)
				if err == syscall.EAGAIN {
					break
				}
				if err != nil || r == 0 {
					reason := "socket: closed by the server"
					if err != nil {
						reason = "socket: " + err.Error()
					}
					lost(c, reason)
					break
				}
				done := time.Now()
				if !c.busy {
					rec.error("unsolicited answer")
					closeConn(c)
					break
				}
				c.in = append(c.in, readBuf[:r]...)
				size, status, closeAfter, perr := parseAnswer(c.in)
				if perr != nil {
					lost(c, "socket: "+perr.Error())
					break
				}
				if size == 0 {
					continue
				}
				if size != len(c.in) {
					rec.error("unsolicited answer")
					closeConn(c)
					break
				}
				if measured(c.it) {
					rec.response(j.Kinds[c.it.req.kind], status, done.Sub(c.it.intended), done.Sub(c.sent), c.it.dispatched.Sub(c.it.intended))
				}
				if closeAfter {
					c.busy = false
					closeConn(c)
					break
				}
				next(c)
			}
		}
	}
	wall := time.Since(wall0).Seconds()
	for _, c := range byFd {
		closeConn(c)
	}
	errs := 0
	for _, n := range rec.errors {
		errs += n
	}
	// Requests scheduled in the window that got neither an answer nor an error by the end.
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
		"sent":              sentCount,
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
