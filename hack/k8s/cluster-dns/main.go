// Command cluster-dns is the local cluster's DNS: it answers A queries for
// Services (<svc>.<ns>.svc.<domain> → the cluster IP, or the ready endpoint
// addresses of a headless Service) from informers on the apiserver, and
// NXDOMAIN for every other name. It forwards nothing anywhere, so no query
// leaves the machine. UDP and TCP on one address (the bridge's, port 53).
//
//	cluster-dns -kubeconfig FILE -listen 10.244.0.1:53 [-domain cluster.local]
//	cluster-dns -query NAME -server 10.244.0.1:53   (prints the addresses; for readiness checks)
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/clientcmd"
)

const ttl = 5

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig with list/watch on Services and EndpointSlices")
	listen := flag.String("listen", "", "address:port for UDP and TCP")
	domain := flag.String("domain", "cluster.local", "cluster domain")
	query := flag.String("query", "", "resolve this name against -server and exit")
	server := flag.String("server", "", "DNS server address:port for -query")
	flag.Parse()
	if *query != "" {
		if err := lookup(*query, *server); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(*kubeconfig, *listen, *domain); err != nil {
		log.Fatal(err)
	}
}

func run(kubeconfig, listen, domain string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	factory := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	r := &resolver{
		suffix:    ".svc." + strings.Trim(domain, ".") + ".",
		services:  factory.Core().V1().Services().Lister(),
		endpoints: factory.Discovery().V1().EndpointSlices().Lister(),
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer %v did not sync", typ)
		}
	}

	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); pc.Close(); ln.Close() }()
	go serveTCP(ln, r)
	log.Printf("cluster-dns serving %s for *%s", listen, r.suffix)
	buf := make([]byte, 1500)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if resp := r.answer(buf[:n], 512); resp != nil {
			_, _ = pc.WriteTo(resp, addr)
		}
	}
}

// lookup resolves name against server only (never the host's resolver).
func lookup(name, server string) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		return err
	}
	fmt.Println(strings.Join(addrs, " "))
	return nil
}

func serveTCP(ln net.Listener, r *resolver) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			for {
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(conn, l[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(conn, msg); err != nil {
					return
				}
				resp := r.answer(msg, 65535)
				if resp == nil {
					return
				}
				out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
				if _, err := conn.Write(append(out, resp...)); err != nil {
					return
				}
			}
		}()
	}
}

type resolver struct {
	suffix    string
	services  corelisters.ServiceLister
	endpoints discoverylisters.EndpointSliceLister
}

// lookup returns the addresses of name and whether the name exists.
func (r *resolver) lookup(name string) ([]netip.Addr, bool) {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, r.suffix) {
		return nil, false
	}
	parts := strings.Split(strings.TrimSuffix(name, r.suffix), ".")
	if len(parts) != 2 {
		return nil, false
	}
	svc, err := r.services.Services(parts[1]).Get(parts[0])
	if err != nil {
		return nil, false
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		var out []netip.Addr
		for _, ip := range svc.Spec.ClusterIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				out = append(out, a)
			}
		}
		return out, true
	}
	slices, err := r.endpoints.EndpointSlices(parts[1]).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: parts[0]}))
	if err != nil {
		return nil, true
	}
	var out []netip.Addr
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, ip := range e.Addresses {
				if a, err := netip.ParseAddr(ip); err == nil {
					out = append(out, a)
				}
			}
		}
	}
	return out, true
}

// answer builds the response to one query message; nil drops it.
func (r *resolver) answer(query []byte, limit int) []byte {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil || hdr.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RecursionDesired: hdr.RecursionDesired}
	addrs, exists := r.lookup(q.Name.String())
	if !exists {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	for _, a := range addrs {
		h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: ttl}
		switch {
		case a.Is4() && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL):
			h.Type = dnsmessage.TypeA
			_ = b.AResource(h, dnsmessage.AResource{A: a.As4()})
		case a.Is6() && (q.Type == dnsmessage.TypeAAAA || q.Type == dnsmessage.TypeALL):
			h.Type = dnsmessage.TypeAAAA
			_ = b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster-dns:", err)
		return nil
	}
	if len(out) > limit {
		// Too many endpoints for UDP: say so, and the client retries on TCP.
		rh.Truncated = true
		tb := dnsmessage.NewBuilder(nil, rh)
		_ = tb.StartQuestions()
		_ = tb.Question(q)
		out, err = tb.Finish()
		if err != nil {
			return nil
		}
	}
	return out
}
