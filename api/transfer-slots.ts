/** A ceiling on transfers in progress: the local store's uploads and downloads of one API process. */
export class TransferSlots {
  #inUse = 0;

  constructor(readonly max: number) {}

  /**
   * Takes a slot: returns the function that gives it back (call it when the transfer ends, however
   * it ends; later calls do nothing), or undefined when every slot is taken.
   */
  tryAcquire(): (() => void) | undefined {
    if (this.#inUse >= this.max) return undefined;
    this.#inUse++;
    let held = true;
    return () => {
      if (held) {
        held = false;
        this.#inUse--;
      }
    };
  }
}
