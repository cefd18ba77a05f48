// Command echo is the workload of the local-cluster test, one static binary
// with three modes:
//
//	echo serve [ADDR]  HTTP server: "/" answers "hello from HOSTNAME", "/healthz" "ok"
//	echo print TEXT    prints TEXT and exits 0 (the Job)
//	echo get URL...    GETs each URL (retrying for up to 30 s), prints the bodies, exits 0 when all gave 200
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: echo serve [ADDR] | print TEXT | get URL")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		host, _ := os.Hostname()
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "hello from %s\n", host) })
		srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		fmt.Println("serving on", addr)
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "print":
		fmt.Println(strings.Join(os.Args[2:], " "))
	case "get":
		for _, u := range os.Args[2:] {
			if !get(u) {
				os.Exit(1)
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func get(url string) bool {
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("%s status %d: %s", url, resp.StatusCode, body)
			if resp.StatusCode == http.StatusOK {
				return true
			}
		} else {
			fmt.Fprintln(os.Stderr, "get:", err)
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(500 * time.Millisecond)
	}
}
