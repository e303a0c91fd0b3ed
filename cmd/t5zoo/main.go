// Command t5zoo is the one binary of t5zoo: the catalog of T5 shapes, the checkpoint zoo,
// the inference engine and the server, each behind a verb.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		os.Exit(1)
	}
}
