// The one Buffer use of the shared validation rules (IQN length in bytes), for the browser.
const encoder = new TextEncoder();
export const Buffer = { byteLength: (s: string): number => encoder.encode(s).length };
