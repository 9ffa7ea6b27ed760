package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

// program is something respawner supervises in a benchmark.
type program struct {
	Label string   // for the report
	Path  string   // absolute path
	Args  []string // arguments after "--"
	Comm  string   // what /proc/PID/comm reads once it has exec'd
}

func (p program) String() string {
	s := p.Path
	for _, a := range p.Args {
		s += " " + a
	}
	return s
}

var (
	sysSleep = program{Label: "/bin/sleep 1000", Path: "/bin/sleep", Args: []string{"1000"}, Comm: "sleep"}
	sysFalse = program{Label: "/bin/false", Path: "/bin/false", Comm: "false"}
)

// The tiny static children are hand-assembled x86-64 ELF executables of a
// few dozen bytes: no dynamic loader, no libc, so exec is as cheap as it gets
// and what is measured is respawner rather than the program's start-up.
var (
	// pause loop:  mov eax, 34 (pause) ; syscall ; jmp back
	codePause = []byte{0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7}
	// exit_group(1):  mov edi, 1 ; mov eax, 231 ; syscall
	codeExit1 = []byte{0xbf, 1, 0, 0, 0, 0xb8, 231, 0, 0, 0, 0x0f, 0x05}
)

// tinyELF wraps x86-64 machine code into a minimal static executable: an ELF
// header and one PT_LOAD program header mapping the whole file at 0x400000.
func tinyELF(code []byte) []byte {
	const base = 0x400000
	const ehsize, phsize = 64, 56
	size := ehsize + phsize + len(code)
	b := make([]byte, 0, size)
	le := binary.LittleEndian
	b = append(b, 0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	b = le.AppendUint16(b, 2)                  // e_type: ET_EXEC
	b = le.AppendUint16(b, 0x3e)               // e_machine: x86-64
	b = le.AppendUint32(b, 1)                  // e_version
	b = le.AppendUint64(b, base+ehsize+phsize) // e_entry
	b = le.AppendUint64(b, ehsize)             // e_phoff
	b = le.AppendUint64(b, 0)                  // e_shoff
	b = le.AppendUint32(b, 0)                  // e_flags
	b = le.AppendUint16(b, ehsize)             // e_ehsize
	b = le.AppendUint16(b, phsize)             // e_phentsize
	b = le.AppendUint16(b, 1)                  // e_phnum
	b = le.AppendUint16(b, 0)                  // e_shentsize
	b = le.AppendUint16(b, 0)                  // e_shnum
	b = le.AppendUint16(b, 0)                  // e_shstrndx
	b = le.AppendUint32(b, 1)                  // p_type: PT_LOAD
	b = le.AppendUint32(b, 5)                  // p_flags: R+X
	b = le.AppendUint64(b, 0)                  // p_offset
	b = le.AppendUint64(b, base)               // p_vaddr
	b = le.AppendUint64(b, base)               // p_paddr
	b = le.AppendUint64(b, uint64(size))       // p_filesz
	b = le.AppendUint64(b, uint64(size))       // p_memsz
	b = le.AppendUint64(b, 0x1000)             // p_align
	return append(b, code...)
}

// tinyPrograms writes the static children into dir and checks that they run.
// On another architecture, or where dir does not allow exec, it returns an
// error and the caller falls back to /bin/sleep and /bin/false.
func tinyPrograms(dir string) (pause, exit1 program, err error) {
	if runtime.GOARCH != "amd64" {
		return pause, exit1, fmt.Errorf("tiny static children are x86-64 only (this is %s)", runtime.GOARCH)
	}
	pause = program{Label: "static pause()", Path: filepath.Join(dir, "rsb-pause"), Comm: "rsb-pause"}
	exit1 = program{Label: "static exit(1)", Path: filepath.Join(dir, "rsb-exit1"), Comm: "rsb-exit1"}
	for _, p := range []struct {
		path string
		code []byte
	}{{pause.Path, codePause}, {exit1.Path, codeExit1}} {
		if err := os.WriteFile(p.path, tinyELF(p.code), 0o755); err != nil {
			return pause, exit1, err
		}
	}
	// exit1 must exit with status 1 at once.
	err = exec.Command(exit1.Path).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		return pause, exit1, fmt.Errorf("%s: want exit status 1, got %v", exit1.Path, err)
	}
	// pause must stay up until killed.
	cmd := exec.Command(pause.Path)
	if err := cmd.Start(); err != nil {
		return pause, exit1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return pause, exit1, fmt.Errorf("%s exited at once: %v", pause.Path, err)
	case <-time.After(50 * time.Millisecond):
	}
	cmd.Process.Kill()
	<-done
	return pause, exit1, nil
}
