package registry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantguard/tenantguard/internal/registry"
)

// helperEnv makes the test binary run a gateway instead of the tests, so a
// benchmark can measure the gateway's memory apart from the client and the
// upstream, which share the benchmark's process.
const helperEnv = "TENANTGUARD_REGISTRY_GATEWAY_HELPER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(runGatewayHelper(cfg))
	}
	os.Exit(m.Run())
}

// runGatewayHelper starts a gateway from a JSON Config, prints its URLs as
// one JSON line, and serves until stdin closes or a signal arrives.
func runGatewayHelper(cfgJSON string) int {
	var cfg registry.Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// A CPU profile of the gateway alone, for the throughput benchmark.
	if path := os.Getenv("TENANTGUARD_GATEWAY_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := registry.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(srv)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Close(shutdown)
	return 0
}

// gatewayProcess runs a gateway in a child process.
type gatewayProcess struct {
	srv   registry.Server
	stdin io.Closer
	cmd   *exec.Cmd
}

func startGatewayProcess(tb testing.TB, cfg registry.Config) *gatewayProcess {
	tb.Helper()
	cfg.Log, cfg.Audit = nil, nil
	data, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+string(data))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &gatewayProcess{stdin: stdin, cmd: cmd}
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("gateway process: %v", err)
	}
	if err := json.Unmarshal([]byte(line), &p.srv); err != nil {
		tb.Fatalf("gateway process said %q: %v", strings.TrimSpace(line), err)
	}
	return p
}
