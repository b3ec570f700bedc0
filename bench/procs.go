package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// Linux fixes it at 100 on every architecture Go supports.
const clockTicks = 100

// procStat is what the harness reads of one process.
type procStat struct {
	PID     int
	PPID    int
	Name    string  // basename of the executable
	CPU     float64 // user + system seconds so far
	HWMKB   int64   // peak resident set (VmHWM)
	RSSKB   int64   // current resident set (VmRSS)
	Started bool    // read successfully
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status.
func readProc(pid int) procStat {
	st := procStat{PID: pid}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st
	}
	// comm is in parentheses and may contain spaces: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, ppid 4.
	if len(f) < 13 {
		return st
	}
	st.PPID, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	st.CPU = (ut + stime) / clockTicks
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		st.Name = filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	}
	if s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			switch {
			case strings.HasPrefix(line, "VmHWM:"):
				st.HWMKB = kb(line)
			case strings.HasPrefix(line, "VmRSS:"):
				st.RSSKB = kb(line)
			}
		}
	}
	st.Started = true
	return st
}

func kb(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n
}

// children lists the live processes whose parent is pid.
func children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// tree is a snapshot of a hub process and its plugin subprocesses.
type tree struct {
	Hub     procStat
	Plugins []procStat
}

func snapshot(hubPID int) tree {
	t := tree{Hub: readProc(hubPID)}
	for _, c := range children(hubPID) {
		if p := readProc(c); p.Started {
			t.Plugins = append(t.Plugins, p)
		}
	}
	return t
}

// cpuSince is the CPU seconds the hub and its plugins used between two
// snapshots (plugins matched by pid; one that started in between counts
// from zero).
func cpuSince(before, after tree) (hub, plugins float64, byName map[string]float64) {
	hub = after.Hub.CPU - before.Hub.CPU
	byName = map[string]float64{"hub": hub}
	prev := map[int]float64{}
	for _, p := range before.Plugins {
		prev[p.PID] = p.CPU
	}
	for _, p := range after.Plugins {
		plugins += p.CPU - prev[p.PID]
		byName[p.Name] += p.CPU - prev[p.PID]
	}
	return hub, plugins, byName
}
