// Command compile-bench measures the compiler on a large real definition
// (box/openapi.json from the shared corpus) against kin-openapi alone loading
// and validating the same bytes, in one run, and the compiler's peak RSS in a
// child process that does nothing else. The last line of its output is
// "ratio compile/kin-openapi: <x.xx>".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/gatekiln/gatekiln/builder/compile"
)

func main() {
	file := flag.String("file", "", "definition to compile (default: box/openapi.json of the shared corpus)")
	rounds := flag.Int("n", 15, "timed rounds of each")
	child := flag.String("child", "", "internal: compile or kin once and exit, for the peak RSS")
	flag.Parse()
	if *file == "" {
		p, err := corpusBox()
		if err != nil {
			fail(err)
		}
		*file = p
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		fail(err)
	}
	switch *child {
	case "compile":
		if err := runCompile(data); err != nil {
			fail(err)
		}
		return
	case "kin":
		if err := runKin(data); err != nil {
			fail(err)
		}
		return
	}

	compileRSS, err := peakRSS(*file, "compile")
	if err != nil {
		fail(err)
	}
	kinRSS, err := peakRSS(*file, "kin")
	if err != nil {
		fail(err)
	}

	// Warm up both, then interleave the rounds so that machine noise falls on
	// both alike; the medians are compared.
	if err := runKin(data); err != nil {
		fail(err)
	}
	if err := runCompile(data); err != nil {
		fail(err)
	}
	var kinTimes, compileTimes []time.Duration
	for range *rounds {
		d, err := timed(func() error { return runKin(data) })
		if err != nil {
			fail(err)
		}
		kinTimes = append(kinTimes, d)
		d, err = timed(func() error { return runCompile(data) })
		if err != nil {
			fail(err)
		}
		compileTimes = append(compileTimes, d)
	}
	kin, comp := median(kinTimes), median(compileTimes)
	fmt.Printf("definition: %s (%d bytes)\n", *file, len(data))
	fmt.Printf("kin-openapi load+validate: median %v over %d rounds\n", kin.Round(time.Microsecond), *rounds)
	fmt.Printf("gatekiln compile:          median %v over %d rounds\n", comp.Round(time.Microsecond), *rounds)
	fmt.Printf("peak RSS: compile %.1f MiB, kin-openapi alone %.1f MiB (target <= 200 MiB)\n", compileRSS, kinRSS)
	fmt.Printf("ratio compile/kin-openapi: %.2f\n", float64(comp)/float64(kin))
}

func runCompile(data []byte) error {
	_, err := compile.Compile(compile.Input{Files: []compile.File{{Path: "openapi.json", Data: data}}})
	return err
}

// runKin is what kin-openapi does alone: load the bytes, resolve, validate
// with the options the compiler uses.
func runKin(data []byte) error {
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return err
	}
	return doc.Validate(context.Background(), compile.ValidationOptions()...)
}

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// peakRSS runs this program as a child doing one thing and returns the
// child's maximum resident set size in MiB.
func peakRSS(file, what string) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, "-child", what, "-file", file)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("child %s: %w", what, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, errors.New("no rusage for the child")
	}
	return float64(ru.Maxrss) / 1024, nil // Linux reports KiB
}

// corpusBox finds ../shared/corpus/box/openapi.json beside the repository.
func corpusBox() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(filepath.Dir(d), "shared", "corpus", "box", "openapi.json")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("corpus file not found beside the repository: %w", err)
			}
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above the working directory; pass -file")
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compile-bench:", err)
	os.Exit(1)
}
