package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// cpuReport is the CPU a process spent on the load phase of a run: in
// seconds, in cores (CPU seconds per wall-clock second) and per
// acknowledged event.
type cpuReport struct {
	PID        int     `json:"pid,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Cores      float64 `json:"cores"`
	USPerEvent float64 `json:"us_per_event"`
}

// newCPUReport reports cpu spent over wall for events.
func newCPUReport(pid int, cpu, wall time.Duration, events int64) *cpuReport {
	r := &cpuReport{PID: pid, CPUSeconds: cpu.Seconds(), Cores: cpu.Seconds() / wall.Seconds()}
	if events > 0 {
		r.USPerEvent = float64(cpu.Microseconds()) / float64(events)
	}
	return r
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procCPU reads the user and system CPU time of process pid from
// /proc/PID/stat (Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("bench: --server-pid: %w (it needs Linux's /proc)", err)
	}
	// The command name, in parentheses, may hold spaces: count the
	// fields after its closing parenthesis. utime and stime are fields 14
	// and 15 of the line, so 12 and 13 after the name.
	i := bytes.LastIndexByte(b, ')')
	f := bytes.Fields(b[i+1:])
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("bench: --server-pid: unexpected /proc/%d/stat: %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: --server-pid: unexpected /proc/%d/stat: %q", pid, b)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// cpuMeter measures the CPU this process and the server (if pid is not 0)
// spend between start and stop.
type cpuMeter struct {
	pid          int
	self, server time.Duration
	selfOK       bool
}

func startCPUMeter(pid int) (*cpuMeter, error) {
	m := &cpuMeter{pid: pid}
	m.self, m.selfOK = selfCPU()
	if pid > 0 {
		var err error
		if m.server, err = procCPU(pid); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// stop returns the CPU spent since start: this process's (-1 where it
// cannot be measured) and the server's.
func (m *cpuMeter) stop() (self, server time.Duration, err error) {
	self = -1
	if now, ok := selfCPU(); ok && m.selfOK {
		self = now - m.self
	}
	if m.pid > 0 {
		now, err := procCPU(m.pid)
		if err != nil {
			return self, 0, err
		}
		server = now - m.server
	}
	return self, server, nil
}
