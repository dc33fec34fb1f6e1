/** One Server-Sent Event as a client sees it. */
export interface ReceivedEvent {
  id: string | undefined;
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the event carried.
  data: any;
}

/**
 * Reads an SSE response until the server ends it (or `until` says stop, or the timeout passes),
 * parsing `id`, `event` and JSON `data` fields the way EventSource does.
 */
export async function readEvents(
  url: string,
  options: {
    headers?: Record<string, string>;
    timeoutMs?: number;
    until?: (event: ReceivedEvent) => boolean;
  } = {},
): Promise<{
  status: number;
  headers: Headers;
  events: ReceivedEvent[];
  /** The server ended the response (not `until`, not the timeout). */
  ended: boolean;
}> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 15_000);
  const events: ReceivedEvent[] = [];
  try {
    const response = await fetch(url, { headers: options.headers, signal: controller.signal });
    if (!response.ok || !response.body)
      return { status: response.status, headers: response.headers, events, ended: true };
    const decoder = new TextDecoder();
    let buffer = "";
    let current: { id?: string; event?: string; data: string[] } = { data: [] };
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline = buffer.indexOf("\n");
      while (newline >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf("\n");
        if (line === "") {
          if (current.data.length) {
            const text = current.data.join("\n");
            let data: unknown = text;
            try {
              data = JSON.parse(text);
            } catch {}
            const event = { id: current.id, event: current.event ?? "message", data };
            events.push(event);
            if (options.until?.(event)) {
              controller.abort();
              return { status: response.status, headers: response.headers, events, ended: false };
            }
          }
          current = { data: [] };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") current.data.push(value);
          else if (field === "id") current.id = value;
          else if (field === "event") current.event = value;
        }
      }
    }
    return { status: response.status, headers: response.headers, events, ended: true };
  } catch (error) {
    if ((error as Error).name === "AbortError")
      return { status: 200, headers: new Headers(), events, ended: false };
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
