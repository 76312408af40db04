// Command pause is husk's pod sandbox ("pause") program for the CRI tests:
// it holds a pod's namespaces open and does nothing else. It blocks until
// SIGTERM or SIGINT (then exits 0), and reaps the zombies it inherits as
// PID 1 of a pod that shares its PID namespace, like Kubernetes' pause.
// It is built static (CGO_ENABLED=0) by scripts/mkpause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
