/**
 * The server's validation rules and messages (src/config/validation.ts), bundled into the
 * page: a field is checked here with the same rule and the same words the API would answer.
 */
export { credentialsProblem, imageNameProblem, invalidIqnMessage, normalizeIqn, parseSize, poolNameProblem, SIZE_INVALID, snapshotNameProblem, hostGroupNameProblem } from '../../src/config/validation';
