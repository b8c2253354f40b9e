// The FROM lines a build context's Dockerfile names: each must be an image on this machine before the
// build starts (the engine would otherwise try to pull it, and hang without a registry).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromImages } from './images.js';

test('fromImages: images, not scratch, not earlier stages, not ARG-built names; flags and AS are read', () => {
  const dockerfile = [
    'ARG BASE=infergate-python:bookworm',
    'FROM --platform=linux/amd64 infergate-python:bookworm AS build',
    'RUN echo building',
    'from build as test',
    'FROM scratch',
    'FROM ${BASE}',
    'FROM mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest',
    '  FROM Build',
  ].join('\n');
  assert.deepEqual(fromImages(dockerfile), ['infergate-python:bookworm', 'mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest']);
});
