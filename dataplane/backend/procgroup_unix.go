//go:build unix

package backend

import (
	"os"
	"os/exec"
	"syscall"
)

// ownGroup starts the child as the leader of a process group of its own,
// so that closing it reaches whatever it spawned (a shell's children, an
// npx's node), which would otherwise outlive the data plane.
func ownGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// signalGroup sends sig to the child's whole process group (its pgid is its
// pid). The kernel does not hand out a pid still in use as a group id, so
// after the leader was reaped this still reaches only its descendants.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}

// groupAlive reports whether any process of the child's group is left.
func groupAlive(p *os.Process) bool { return syscall.Kill(-p.Pid, 0) == nil }
