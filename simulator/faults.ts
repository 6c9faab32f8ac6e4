// Faults the admin endpoint can inject into a host (never through XML-RPC itself).
export interface InjectedFailure {
  code: string;
  params: string[];
}

export class Faults {
  /** method name -> failures to return on its next calls, in order. */
  private failNextCalls = new Map<string, InjectedFailure[]>();
  /** The next data connection (outgoing or incoming) is cut after this many bytes. */
  cutDataAfterBytes: number | undefined;
  frozen = false;
  delayMs = 0;
  private frozenWaiters: (() => void)[] = [];

  failNext(method: string, failure: InjectedFailure): void {
    const list = this.failNextCalls.get(method) ?? [];
    list.push(failure);
    this.failNextCalls.set(method, list);
  }

  /** The failure to return for this call, if one was injected (Async.X matches X too). */
  takeFailure(method: string): InjectedFailure | undefined {
    for (const name of [method, method.replace(/^Async\./, '')]) {
      const list = this.failNextCalls.get(name);
      if (list?.length) {
        const f = list.shift();
        if (!list.length) this.failNextCalls.delete(name);
        return f;
      }
    }
    return undefined;
  }

  /** Returns and clears the cut, so it applies to one connection. */
  takeCut(): number | undefined {
    const cut = this.cutDataAfterBytes;
    this.cutDataAfterBytes = undefined;
    return cut;
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    const waiters = this.frozenWaiters;
    this.frozenWaiters = [];
    for (const w of waiters) w();
  }

  onThaw(cb: () => void): void {
    if (!this.frozen) cb();
    else this.frozenWaiters.push(cb);
  }

  describe(): Record<string, unknown> {
    return {
      failNext: Object.fromEntries(this.failNextCalls),
      cutDataAfterBytes: this.cutDataAfterBytes ?? null,
      frozen: this.frozen,
      delayMs: this.delayMs,
    };
  }
}
