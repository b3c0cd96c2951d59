// walkhash DIR ROUNDS: walk DIR (without following symlinks), then read and hash every
// regular file with 16 goroutines, ROUNDS times over, while another goroutine spins in a
// loop without calls (so the runtime must preempt it with signals) and the main goroutine
// forces garbage collections. Checks that every round read the same bytes and that each
// file's size from the walk equals the bytes read, then prints
// "files=N links=L dirs=D bytes=B digest=%016x", the digest being FNV-1a-64 over the sorted
// lines "f REL PERM SIZE FNV", "l REL -> TARGET" and "d REL PERM".
package main

import (
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
)

type file struct {
	rel, path string
	perm      fs.FileMode
	size      int64
}

func hashFile(path string) (uint64, int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64(), int64(len(b)), nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: walkhash DIR ROUNDS")
		os.Exit(2)
	}
	root := os.Args[1]
	rounds, _ := strconv.Atoi(os.Args[2])

	var stop int32
	var spins uint64
	go func() {
		x := uint64(0)
		for atomic.LoadInt32(&stop) == 0 {
			for i := 0; i < 1000000; i++ {
				x += uint64(i) ^ x>>3
			}
			spins++
		}
		_ = x
	}()

	var files []file
	var lines []string
	dirs, links := 0, 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("l %s -> %s\n", rel, t))
			links++
		case d.IsDir():
			lines = append(lines, fmt.Sprintf("d %s %o\n", rel, info.Mode().Perm()))
			dirs++
		default:
			files = append(files, file{rel, p, info.Mode().Perm(), info.Size()})
		}
		return nil
	})
	if err != nil {
		fmt.Println("walk:", err)
		os.Exit(1)
	}

	hashes := make([][]uint64, rounds)
	var bad int64
	var total int64
	for r := 0; r < rounds; r++ {
		hashes[r] = make([]uint64, len(files))
		work := make(chan int)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					h, n, err := hashFile(files[i].path)
					if err != nil || n != files[i].size {
						if atomic.AddInt64(&bad, 1) < 5 {
							fmt.Fprintln(os.Stderr, files[i].rel, n, files[i].size, err)
						}
					}
					hashes[r][i] = h
					atomic.AddInt64(&total, n)
				}
			}()
		}
		for i := range files {
			work <- i
			if i%500 == 0 {
				runtime.GC()
			}
		}
		close(work)
		wg.Wait()
		if r > 0 {
			for i := range files {
				if hashes[r][i] != hashes[0][i] {
					bad++
				}
			}
		}
	}
	atomic.StoreInt32(&stop, 1)
	if bad != 0 {
		fmt.Println("mismatches:", bad)
		os.Exit(1)
	}
	for i, f := range files {
		lines = append(lines, fmt.Sprintf("f %s %o %d %016x\n", f.rel, f.perm, f.size, hashes[0][i]))
	}
	sort.Strings(lines)
	d := fnv.New64a()
	for _, l := range lines {
		d.Write([]byte(l))
	}
	fmt.Printf("files=%d links=%d dirs=%d bytes=%d digest=%016x\n", len(files), links, dirs, total/int64(rounds), d.Sum64())
}
