// Endpoint and deployment names (contract §1.8): the Azure SDK's rule and its exact messages, so scripts
// and users see what `az ml` would print.

import { refine, text, type Type } from './schema.js';

export const MIN_NAME_LENGTH = 3;
export const MAX_NAME_LENGTH = 32;
export const NAME_PATTERN = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** Azure's message for a bad endpoint or deployment name, or undefined when the name is fine. */
export function validateName(name: string, what: 'endpoint' | 'deployment'): string | undefined {
  const a = what === 'endpoint' ? 'an endpoint' : 'a deployment';
  if (name.length < MIN_NAME_LENGTH || name.length > MAX_NAME_LENGTH) {
    return `The name for ${a} must be at least ${MIN_NAME_LENGTH} and at most ${MAX_NAME_LENGTH} characters long (inclusive of both limits).`;
  }
  // The line break is in the SDK's message (a triple-quoted f-string), kept verbatim.
  if (!NAME_PATTERN.test(name)) return `The name for ${a} must start with an upper- or lowercase letter\n and only consist of '-'s and alphanumeric characters.`;
  return undefined;
}

/** A name field: Azure's rule, reported at the name. */
export const resourceName = (what: 'endpoint' | 'deployment'): Type<string> => refine(text, (s) => validateName(s, what), 'a name');
