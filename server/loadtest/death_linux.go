package loadtest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill a child server if the load
// generator dies without stopping it (kill -9, a panic).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
