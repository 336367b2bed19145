package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
)

// rawSub is a subscriber that speaks the protocol over a plain TCP connection, without the
// Go client: the "raw subscriber" rows, which show the server without nats.go's
// per-message dispatch on the receiving side.
type rawSub struct {
	conn net.Conn
	r    *bufio.Reader
	log  *[]int64
	buf  []byte
	done chan struct{}
}

// dialRaw connects, subscribes and waits for the PONG that confirms the subscription.
func dialRaw(rawURL, subject, queue string, log *[]int64) *rawSub {
	u, err := url.Parse(rawURL)
	if err != nil {
		fail("sub url %s: %v", rawURL, err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		fail("raw subscriber connect %s: %v", u.Host, err)
	}
	r := bufio.NewReaderSize(conn, 1<<20)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		fail("raw subscriber INFO: %v", err)
	}
	sub := "SUB " + subject + " 1\r\n"
	if queue != "" {
		sub = "SUB " + subject + " " + queue + " 1\r\n"
	}
	hello := `CONNECT {"verbose":false,"pedantic":false,"protocol":1,"name":"natsbench-rawsub"}` + "\r\n" + sub + "PING\r\n"
	if _, err := conn.Write([]byte(hello)); err != nil {
		fail("raw subscriber: %v", err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			fail("raw subscriber PONG: %v", err)
		}
		if line == "PONG\r\n" {
			break
		}
		if len(line) >= 4 && line[:4] == "-ERR" {
			fail("raw subscriber: %s", line)
		}
	}
	return &rawSub{conn: conn, r: r, log: log, done: make(chan struct{})}
}

// run counts MSGs (and HMSGs) until the connection closes, answering the server's PINGs.
func (s *rawSub) run(delivered *uint64) {
	defer close(s.done)
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			// Closed at the run's end, or by the server (a slow consumer): the count tells.
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")), bytes.HasPrefix(line, []byte("HMSG ")):
			f := bytes.Fields(line)
			n, err := strconv.Atoi(string(f[len(f)-1]))
			if err != nil {
				fail("raw subscriber: bad line %q", line)
			}
			if cap(s.buf) < n+2 {
				s.buf = make([]byte, n+2)
			}
			payload := s.buf[:n+2]
			if _, err := io.ReadFull(s.r, payload); err != nil {
				return
			}
			if d, ok := since(payload[:n]); ok {
				*s.log = append(*s.log, d)
			}
			atomic.AddUint64(delivered, 1)
		case bytes.HasPrefix(line, []byte("PING")):
			_, _ = s.conn.Write([]byte("PONG\r\n"))
		case bytes.HasPrefix(line, []byte("-ERR")):
			fail("raw subscriber: %s", bytes.TrimSpace(line))
		}
	}
}

// close ends the connection and waits for run to return: the log is complete after it.
func (s *rawSub) close() {
	_ = s.conn.Close()
	<-s.done
}
