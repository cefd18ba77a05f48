// Command echo is the workload of the local-cluster test, one static binary
// with three modes:
//
//	echo serve [ADDR]  HTTP server: "/" answers "hello from HOSTNAME", "/healthz" "ok"
//	echo print TEXT    prints TEXT and exits 0 (the Job)
//	echo get URL       GETs URL (retrying for up to 30 s), prints the body, exits 0 on 200
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
		client := &http.Client{Timeout: 3 * time.Second}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := client.Get(os.Args[2])
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				fmt.Printf("status %d: %s", resp.StatusCode, body)
				if resp.StatusCode == http.StatusOK {
					return
				}
			} else {
				fmt.Fprintln(os.Stderr, "get:", err)
			}
			if time.Now().After(deadline) {
				os.Exit(1)
			}
			time.Sleep(500 * time.Millisecond)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
