package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/scripts/internal/echoprobe"
)

// benchSnapshot measures, in one run and beside a cold boot of the same image
// and shape (a 2 GiB guest): the pause of a snapshot with memory, as fvm
// reports it and as a client of the guest sees it (the longest round trip
// of a byte echoed by a guest process through a forwarded port, every 5 ms);
// a restore of that snapshot → SSH; a fork of the running VM → SSH.
func benchSnapshot(b *bench) error {
	const name, fork = "bench-snap", "bench-fork"
	b.vms = append(b.vms, name, fork)
	port, err := freePort()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := b.run("run", "-d", "--cold", "debian-local", name, "--memory", "2G", "-p", fmt.Sprintf("%d:7777", port)); err != nil {
		return err
	}
	cold := time.Since(t0)
	if _, err := b.run("wait", name); err != nil {
		return err
	}
	// A guest process that echoes each byte, for the outside view of the pause.
	echo := `setsid -f perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>7777,Listen=>1,ReuseAddr=>1) or die; while($c=$s->accept){$c->autoflush(1); while(sysread($c,$b,1)){syswrite($c,$b,1)}}' > /dev/null 2>&1`
	if _, err := b.run("exec", name, "--", echo); err != nil {
		return err
	}
	var pauses, seen []time.Duration
	for i := 0; i < 3; i++ {
		p, worst, err := b.snapshotWithProbe(name, fmt.Sprintf("s%d", i), port)
		if err != nil {
			return err
		}
		pauses, seen = append(pauses, p), append(seen, worst)
	}
	b.add(Row{Name: "snapshot with memory: the guest's pause (2 GiB guest, median of 3)", Value: secs(median(pauses)), Unit: "s", Target: "≤ 1 s",
		Note: fmt.Sprintf("as a client of the guest saw it: longest echo round trip %.0f ms (median of 3); all: %s", median(seen).Seconds()*1000, durs(pauses))})

	t0 = time.Now()
	if _, err := b.run("snapshot", "restore", "--force", name, "s0"); err != nil {
		return err
	}
	b.add(Row{Name: "snapshot restore → SSH (2 GiB guest)", Value: secs(time.Since(t0)), Unit: "s", Versus: "cold run -d → SSH, same image and shape", Against: secs(cold), Target: "≤ 0.05×"})

	t0 = time.Now()
	out, err := b.runErr("clone", name, fork)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Cloned "+fork) {
		return fmt.Errorf("the fork was not restored running: %s", out)
	}
	b.add(Row{Name: "fork of a running VM (fvm clone) → SSH", Value: secs(time.Since(t0)), Unit: "s", Versus: "cold run -d → SSH, same image and shape", Against: secs(cold), Target: "≤ 0.1×",
		Note: "a snapshot taken now, restored and re-identified"})
	return nil
}

// snapshotWithProbe takes a snapshot while a byte goes back and forth to the
// guest's echo process every 5 ms, and returns the pause fvm reported and the
// longest round trip seen meanwhile.
func (b *bench) snapshotWithProbe(name, tag string, port int) (reported, worst time.Duration, err error) {
	c, err := echoprobe.Dial(port, func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench: snapshot: "+format+"\n", args...)
	})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var probeErr error
	wg.Go(func() {
		buf := []byte{'x'}
		for {
			select {
			case <-stop:
				return
			default:
			}
			t := time.Now()
			c.SetDeadline(t.Add(30 * time.Second))
			if _, err := c.Write(buf); err != nil {
				probeErr = err
				return
			}
			if _, err := c.Read(buf); err != nil {
				probeErr = err
				return
			}
			if d := time.Since(t); d > worst {
				worst = d
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(200 * time.Millisecond)
	_, err = b.run("snapshot", "create", name, tag)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		return 0, 0, err
	}
	if probeErr != nil {
		return 0, 0, fmt.Errorf("the guest's echo during the snapshot: %w", probeErr)
	}
	out, err := b.run("snapshot", "ls", name, "--format", "json")
	if err != nil {
		return 0, 0, err
	}
	var snaps []api.Snapshot
	json.Unmarshal([]byte(out), &snaps)
	for _, s := range snaps {
		if s.Tag == tag {
			return time.Duration(s.PauseSeconds * float64(time.Second)), worst, nil
		}
	}
	return 0, 0, fmt.Errorf("snapshot %s is not listed", tag)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func durs(ds []time.Duration) string {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var out []string
	for _, d := range s {
		out = append(out, fmt.Sprintf("%.0f ms", d.Seconds()*1000))
	}
	return strings.Join(out, ", ")
}
