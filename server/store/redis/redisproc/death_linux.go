package redisproc

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill redis-server if its parent dies
// without stopping it (a panic, a test timeout, a kill -9).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
