// Azure Monitor autoscale settings (contract §7.1), as `az monitor autoscale ... show` prints them and as
// the store keeps them. Field names are Azure's JSON (camelCase); capacities are strings, as in Azure.
// Issue 12. Parsing and validation of the CLI's words (conditions, recurrences, time zones) live in
// src/autoscale/settings.ts; this file is the shape only, shared by store, autoscale, api and client.

export type MetricOperator = 'GreaterThan' | 'GreaterThanOrEqual' | 'Equals' | 'NotEquals' | 'LessThan' | 'LessThanOrEqual';
export type MetricStatistic = 'Average' | 'Min' | 'Max' | 'Sum';
export type TimeAggregation = 'Average' | 'Minimum' | 'Maximum' | 'Total' | 'Last' | 'Count';

export interface AutoscaleRule {
  metricTrigger: {
    metricName: string;
    metricNamespace: string;
    /** The resource whose metric is read: the setting's target (a deployment id) or an endpoint id. */
    metricResourceUri: string;
    /** ISO 8601 duration, e.g. PT1M. */
    timeGrain: string;
    statistic: MetricStatistic;
    /** ISO 8601 duration: how far back the rule looks, e.g. PT5M (infergate also takes seconds: PT10S). */
    timeWindow: string;
    timeAggregation: TimeAggregation;
    operator: MetricOperator;
    threshold: number;
    dividePerInstance: boolean;
  };
  scaleAction: {
    direction: 'Increase' | 'Decrease' | 'None';
    type: 'ChangeCount' | 'PercentChangeCount' | 'ExactCount';
    /** A whole number as a string, as Azure writes it. */
    value: string;
    /** ISO 8601 duration, e.g. PT5M. */
    cooldown: string;
  };
}

export interface AutoscaleProfile {
  name: string;
  capacity: { minimum: string; maximum: string; default: string };
  rules: AutoscaleRule[];
  fixedDate?: { timeZone: string; start: string; end: string };
  recurrence?: { frequency: 'Week'; schedule: { timeZone: string; days: string[]; hours: number[]; minutes: number[] } };
}

export interface AutoscaleSetting {
  /** `/workspaces/<workspace>/autoscalesettings/<name>` */
  id: string;
  name: string;
  location: string;
  type: 'Microsoft.Insights/autoscaleSettings';
  /** The deployment it scales: `online-deployment show --query id`. One setting per resource. */
  targetResourceUri: string;
  enabled: boolean;
  profiles: AutoscaleProfile[];
  notifications: unknown[];
  tags: Record<string, string>;
}

/** One decision of the autoscale engine, kept as the setting's history (newest last, bounded). */
export interface AutoscaleEvent {
  /** ISO time. */
  time: string;
  setting: string;
  profile: string;
  /** What happened: scaled, or why not (cooldown, at the limit, no rule fired, metrics missing ...). */
  outcome: 'scaled' | 'unchanged' | 'cooldown' | 'limited' | 'metrics-missing' | 'error';
  from: number;
  to: number;
  /** The rule (its condition as az words it, e.g. "CpuUtilizationPercentage > 70 avg 5m") and the value it saw. */
  rule?: string;
  value?: number;
  message: string;
}
