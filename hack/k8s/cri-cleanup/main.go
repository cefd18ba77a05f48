// Command cri-cleanup stops and removes every Pod sandbox (and so every
// container) of a CRI runtime, the way `crictl stopp`/`rmp` would: stopping a
// sandbox through CRI runs the CNI DEL that frees its IP, veth and port
// mappings. cluster-down uses it after the kubelet has stopped.
//
//	cri-cleanup -endpoint unix:///path/containerd.sock [-list]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "CRI endpoint, unix:///…")
	list := flag.Bool("list", false, "only list the sandboxes and containers")
	timeout := flag.Duration("timeout", 60*time.Second, "overall time limit")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "cri-cleanup: -endpoint is required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *endpoint, *list); err != nil {
		fmt.Fprintln(os.Stderr, "cri-cleanup:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, endpoint string, list bool) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)

	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	ctrs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	if list {
		for _, p := range pods.Items {
			fmt.Printf("sandbox %s %s/%s %s\n", p.Id[:12], p.Metadata.Namespace, p.Metadata.Name, p.State)
		}
		for _, c := range ctrs.Containers {
			fmt.Printf("container %s %s sandbox=%s %s\n", c.Id[:12], c.Metadata.Name, c.PodSandboxId[:12], c.State)
		}
		return nil
	}
	var failed error
	for _, c := range ctrs.Containers {
		if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id, Timeout: 2}); err != nil {
			failed = fmt.Errorf("stop container %s: %w", c.Id[:12], err)
		}
		if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			failed = fmt.Errorf("remove container %s: %w", c.Id[:12], err)
		}
	}
	for _, p := range pods.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			failed = fmt.Errorf("stop sandbox %s: %w", p.Id[:12], err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			failed = fmt.Errorf("remove sandbox %s: %w", p.Id[:12], err)
		}
	}
	fmt.Printf("cri-cleanup: removed %d sandboxes, %d containers\n", len(pods.Items), len(ctrs.Containers))
	return failed
}
