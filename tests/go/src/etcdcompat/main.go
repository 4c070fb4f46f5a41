// etcdcompat runs etcd's own Go client (clientv3 3.4 and its concurrency package) against an
// etcd v3 endpoint set and prints one line per check:
//
//	CHECK <name> PASS|FAIL <detail>
//
// It exits 1 if any check failed. The same program runs against a real etcd and against our
// registry, so a check encodes what etcd answers. The failover check needs a member killed:
// it prints "KILL <endpoint>" and waits for a line on stdin once the caller has killed it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
)

// A check's budget: every wait inside one is bounded by it.
const checkTimeout = 30 * time.Second

type check struct {
	name string
	run  func(ctx context.Context, e *env) error
}

// What every check gets: a client on all endpoints and a key prefix of its own.
type env struct {
	cli       *clientv3.Client
	endpoints []string
	prefix    string
	stdin     *bufio.Reader
	// What a passing check measured, for its PASS line.
	note string
}

func (e *env) key(s string) string { return e.prefix + s }

func main() {
	endpoints := flag.String("endpoints", "", "comma-separated client URLs (all members)")
	only := flag.String("only", "", "comma-separated check names to run (default: all)")
	failover := flag.Bool("failover", true, "run the failover check last (asks for a member to be killed)")
	flag.Parse()
	if *endpoints == "" {
		fmt.Fprintln(os.Stderr, "etcdcompat: -endpoints is required")
		os.Exit(2)
	}
	eps := strings.Split(*endpoints, ",")
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdcompat: client: %v\n", err)
		os.Exit(2)
	}
	defer cli.Close()
	rand.Seed(time.Now().UnixNano())
	run := uint64(rand.Int63())

	checks := []check{
		{"kv-put-get", kvPutGet},
		{"kv-range-prefix", kvRangePrefix},
		{"kv-delete", kvDelete},
		{"txn-compare-value", txnValue},
		{"txn-compare-version", txnVersion},
		{"txn-compare-create-revision", txnCreateRevision},
		{"lease-grant-ttl-keys", leaseGrant},
		{"lease-keepalive-once", leaseKeepAliveOnce},
		{"lease-keepalive-stream", leaseKeepAliveStream},
		{"lease-list", leaseList},
		{"lease-revoke", leaseRevoke},
		{"lease-keepalive-after-revoke", leaseKeepAliveAfterRevoke},
		{"lease-remaining-ttl-truncated", leaseRemainingTruncated},
		{"watch-from-revision-prefix-prev-kv", watchFromRevision},
		{"watch-live-and-cancel", watchLiveCancel},
		{"mutex-two-contenders", mutexTwo},
		{"mutex-exclusion-under-contention", mutexContention},
		{"election-campaign-resign-handover", election},
	}
	if *failover {
		checks = append(checks, check{"failover-kv-and-keepalive", failoverCheck})
	}
	selected := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			selected[n] = true
		}
	}
	stdin := bufio.NewReader(os.Stdin)
	failed := 0
	ran := 0
	for i, c := range checks {
		if len(selected) > 0 && !selected[c.name] {
			continue
		}
		ran++
		e := &env{cli: cli, endpoints: eps, prefix: fmt.Sprintf("/compat/%x/%d/", run, i), stdin: stdin}
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		err := c.run(ctx, e)
		cancel()
		if err != nil {
			failed++
			fmt.Printf("CHECK %s FAIL %s\n", c.name, oneLine(err.Error()))
		} else {
			note := e.note
			if note == "" {
				note = "ok"
			}
			fmt.Printf("CHECK %s PASS %s\n", c.name, note)
		}
	}
	fmt.Printf("etcdcompat: %d checks run, %d failing\n", ran, failed)
	if failed > 0 || ran == 0 {
		os.Exit(1)
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " | ") }

// expect returns an error naming what differs when got != want.
func expect(what string, got, want interface{}) error {
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}

// first returns the first non-nil error.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
