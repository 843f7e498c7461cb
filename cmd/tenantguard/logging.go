package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// loggingOnce guards the process-wide loggers: they are set once, by the
// first command a process runs (tests run several in one process).
var loggingOnce sync.Once

// setUpLogging sends the logs of tenantguard, controller-runtime and
// client-go to stderr as structured text (slog).
func setUpLogging(cmd *cobra.Command, level string) error {
	if level == "" {
		level = "error"
		if n := cmd.Name(); n == "serve" || n == "registry" {
			level = "info"
		}
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return withExitCode(2, fmt.Errorf("--log-level %q: want debug, info, warn or error", level))
	}
	loggingOnce.Do(func() {
		handler := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})
		slog.SetDefault(slog.New(handler))
		logger := logr.FromSlogHandler(handler)
		ctrl.SetLogger(logger)
		klog.SetLogger(logger)
	})
	return nil
}
