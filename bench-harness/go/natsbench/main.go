// natsbench: tachyon-bench's second load generator, driven by the official Go client
// (nats.go), as `nats bench` is. One run of one workload; the result as JSON on stdout.
//
// Built offline against Debian's golang-github-nats-io-go-nats-dev (scripts/setup.sh --bench):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o target/natsbench ./bench-harness/go/natsbench
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type result struct {
	Workload  string   `json:"workload"`
	Published uint64   `json:"published"`
	Delivered uint64   `json:"delivered"`
	ElapsedS  float64  `json:"elapsed_s"`
	PubElapsS float64  `json:"pub_elapsed_s"`
	Latency   *latency `json:"latency,omitempty"`
}

type latency struct {
	Count  uint64  `json:"count"`
	MinUs  float64 `json:"min_us"`
	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P90Us  float64 `json:"p90_us"`
	P99Us  float64 `json:"p99_us"`
	P999Us float64 `json:"p999_us"`
	MaxUs  float64 `json:"max_us"`
}

func summarize(ns []int64) *latency {
	if len(ns) == 0 {
		return nil
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	at := func(p float64) float64 {
		i := int(p / 100 * float64(len(ns)-1))
		return float64(ns[i]) / 1e3
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return &latency{
		Count: uint64(len(ns)), MinUs: float64(ns[0]) / 1e3, MeanUs: sum / float64(len(ns)) / 1e3,
		P50Us: at(50), P90Us: at(90), P99Us: at(99), P999Us: at(99.9), MaxUs: float64(ns[len(ns)-1]) / 1e3,
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "natsbench: "+format+"\n", args...)
	os.Exit(1)
}

func connect(url, name string) *nats.Conn {
	nc, err := nats.Connect(url, nats.Name(name), nats.NoReconnect())
	if err != nil {
		fail("connect %s: %v", url, err)
	}
	return nc
}

func main() {
	url := flag.String("url", nats.DefaultURL, "server the publishers use")
	subURL := flag.String("sub-url", "", "server the subscribers use (default: -url)")
	workload := flag.String("workload", "pubsub", "pub, pubsub, fanout, fanin, queue, reqrep")
	msgs := flag.Int("msgs", 100000, "messages (requests for reqrep) in all")
	size := flag.Int("size", 128, "payload bytes")
	pubs := flag.Int("pub", 1, "publishers (requesters)")
	subs := flag.Int("sub", 1, "subscribers (responders, queue members)")
	stall := flag.Duration("stall", 10*time.Second, "give up after this long without progress")
	raw := flag.Bool("raw-sub", false, "subscribers speak the protocol over plain TCP instead of nats.go")
	flag.Parse()
	if *subURL == "" {
		*subURL = *url
	}
	var r result
	switch *workload {
	case "reqrep":
		r = reqrep(*url, *subURL, *msgs, *size, *stall)
	case "pub", "pubsub", "fanout", "fanin", "queue":
		r = streaming(*workload, *url, *subURL, *msgs, *size, *pubs, *subs, *stall, *raw)
	default:
		fail("unknown workload %q", *workload)
	}
	r.Workload = *workload
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fail("%v", err)
	}
}

// Payloads start with the send time (unix ns) when they have room for it.
func stamp(buf []byte) {
	if len(buf) >= 8 {
		binary.LittleEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
	}
}

func since(data []byte) (int64, bool) {
	if len(data) < 8 {
		return 0, false
	}
	return time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(data)), true
}

func streaming(w, url, subURL string, msgs, size, npub, nsub int, stall time.Duration, raw bool) result {
	if w == "pub" {
		nsub = 0
	}
	subject := func(p, k int) string {
		if w == "fanin" {
			return fmt.Sprintf("telemetry.%d.%d", p, k%100)
		}
		return "bench"
	}
	subSubject := "bench"
	if w == "fanin" {
		subSubject = "telemetry.>"
	}
	expected := uint64(msgs)
	if w == "fanout" {
		expected = uint64(msgs * nsub)
	}
	var delivered uint64
	var conns []*nats.Conn
	var raws []*rawSub
	// One latency log per subscriber: nats.go calls a subscription's handler from one
	// goroutine, so each log has one writer until the run is over.
	logs := make([][]int64, nsub)
	for i := 0; i < nsub; i++ {
		if raw {
			logs[i] = make([]int64, 0, msgs/max(nsub, 1)+1)
			queue := ""
			if w == "queue" {
				queue = "natsbench-q"
			}
			s := dialRaw(subURL, subSubject, queue, &logs[i])
			raws = append(raws, s)
			go s.run(&delivered)
			continue
		}
		nc := connect(subURL, fmt.Sprintf("natsbench-sub-%d", i))
		conns = append(conns, nc)
		logs[i] = make([]int64, 0, msgs/max(nsub, 1)+1)
		i := i
		handler := func(m *nats.Msg) {
			if d, ok := since(m.Data); ok {
				logs[i] = append(logs[i], d)
			}
			atomic.AddUint64(&delivered, 1)
		}
		var sub *nats.Subscription
		var err error
		if w == "queue" {
			sub, err = nc.QueueSubscribe(subSubject, "natsbench-q", handler)
		} else {
			sub, err = nc.Subscribe(subSubject, handler)
		}
		if err != nil {
			fail("subscribe: %v", err)
		}
		// As nats bench: a subscriber slower than the publisher buffers rather than drops.
		_ = sub.SetPendingLimits(-1, -1)
		if err := nc.Flush(); err != nil {
			fail("flush: %v", err)
		}
	}
	pubConns := make([]*nats.Conn, npub)
	for i := range pubConns {
		pubConns[i] = connect(url, fmt.Sprintf("natsbench-pub-%d", i))
	}
	if subURL != url && nsub > 0 {
		crossed(subURL, pubConns, stall)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var published uint64
	for i, nc := range pubConns {
		wg.Add(1)
		share := msgs / npub
		if i < msgs%npub {
			share++
		}
		go func(i int, nc *nats.Conn, share int) {
			defer wg.Done()
			buf := make([]byte, size)
			for n := 0; n < share; n++ {
				stamp(buf)
				if err := nc.Publish(subject(i, n), buf); err != nil {
					fail("publish: %v", err)
				}
			}
			if err := nc.Flush(); err != nil {
				fail("flush: %v", err)
			}
			atomic.AddUint64(&published, uint64(share))
		}(i, nc, share)
	}
	wg.Wait()
	pubElapsed := time.Since(start)
	r := result{Published: published, PubElapsS: pubElapsed.Seconds()}
	if nsub == 0 {
		r.ElapsedS = pubElapsed.Seconds()
		return r
	}
	last, lastAt := uint64(0), time.Now()
	for atomic.LoadUint64(&delivered) < expected {
		time.Sleep(time.Millisecond)
		if d := atomic.LoadUint64(&delivered); d != last {
			last, lastAt = d, time.Now()
		} else if time.Since(lastAt) > stall {
			fail("lost messages: %d of %d delivered", d, expected)
		}
	}
	r.ElapsedS = time.Since(start).Seconds()
	r.Delivered = atomic.LoadUint64(&delivered)
	// Closing waits for the handlers to return: the logs are complete after it.
	for _, nc := range conns {
		nc.Close()
	}
	for _, s := range raws {
		s.close()
	}
	for _, nc := range pubConns {
		nc.Close()
	}
	var lat []int64
	for _, l := range logs {
		lat = append(lat, l...)
	}
	r.Latency = summarize(lat)
	return r
}

// crossed waits until each publisher's probe reaches a probe subscriber on subURL.
func crossed(subURL string, pubConns []*nats.Conn, stall time.Duration) {
	probe := connect(subURL, "natsbench-probe")
	defer probe.Close()
	seen := make(chan string, 1024)
	if _, err := probe.Subscribe("natsbench-probe.crossing", func(m *nats.Msg) { seen <- string(m.Data) }); err != nil {
		fail("probe: %v", err)
	}
	_ = probe.Flush()
	for i, nc := range pubConns {
		want := fmt.Sprint(i)
		deadline := time.Now().Add(stall)
	wait:
		for {
			_ = nc.Publish("natsbench-probe.crossing", []byte(want))
			_ = nc.Flush()
			select {
			case got := <-seen:
				if got == want {
					break wait
				}
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				fail("the subscribers' interest never reached the publishers' server")
			}
		}
	}
}

func reqrep(url, subURL string, msgs, size int, stall time.Duration) result {
	srv := connect(subURL, "natsbench-responder")
	defer srv.Close()
	if _, err := srv.Subscribe("bench.req", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		fail("subscribe: %v", err)
	}
	_ = srv.Flush()
	nc := connect(url, "natsbench-requester")
	defer nc.Close()
	buf := make([]byte, size)
	// Warm-up, not measured.
	for i := 0; i < 1000; i++ {
		if _, err := nc.Request("bench.req", buf, stall); err != nil {
			fail("warm-up request: %v", err)
		}
	}
	lat := make([]int64, 0, msgs)
	start := time.Now()
	for i := 0; i < msgs; i++ {
		t := time.Now()
		if _, err := nc.Request("bench.req", buf, stall); err != nil {
			fail("request %d: %v", i, err)
		}
		lat = append(lat, time.Since(t).Nanoseconds())
	}
	el := time.Since(start).Seconds()
	return result{Published: uint64(msgs), Delivered: uint64(msgs), ElapsedS: el, PubElapsS: el, Latency: summarize(lat)}
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}
