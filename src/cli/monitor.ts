// `infergate monitor autoscale ...`: az's verbs and flags (contract §7.2), so Azure's autoscale scripts
// (deploy-moe-autoscale.sh) run with `az` replaced by `infergate`. The CLI passes az's words through as
// they were typed (a condition, `--scale out 2`, `--recurrence week sat sun`): the server parses and
// validates them (src/autoscale/settings.ts), so every client gets the same coded errors.

import { Command, Option } from 'commander';
import { errorOf } from '../errors/index.js';
import { common, emit, serverClient, type CommonOptions } from './common.js';

interface Named extends CommonOptions {
  name?: string;
  autoscaleName?: string;
}

/** az takes the setting's name as -n/--name on some verbs and --autoscale-name on others (update takes both). */
function settingName(o: Named, prefer: 'name' | 'autoscale-name' = 'name'): string {
  const name = prefer === 'name' ? (o.name ?? o.autoscaleName) : (o.autoscaleName ?? o.name);
  if (name === undefined || name === '') throw errorOf('AutoscaleNameMissing');
  return name;
}

const countOptions = (cmd: Command): Command =>
  cmd
    .option('--min-count <n>', 'the fewest instances')
    .option('--max-count <n>', 'the most instances')
    .option('--count <n>', 'the instances to run when no rule applies, or metrics cannot be read (capacity.default)');

/** Only the counts given, as the server takes them (it validates them: whole numbers, min <= count <= max). */
function counts(o: { minCount?: string; maxCount?: string; count?: string }): { min_count?: string; max_count?: string; count?: string } {
  return {
    ...(o.minCount !== undefined ? { min_count: o.minCount } : {}),
    ...(o.maxCount !== undefined ? { max_count: o.maxCount } : {}),
    ...(o.count !== undefined ? { count: o.count } : {}),
  };
}

// Flags az scripts pass to name a resource by parts; infergate takes the full id in --resource.
const ignored = (cmd: Command): Command =>
  cmd
    .addOption(new Option('--resource-type <type>', 'accepted for az compatibility; ignored (give the full id in --resource)').hideHelp())
    .addOption(new Option('--resource-namespace <namespace>', 'accepted for az compatibility; ignored').hideHelp())
    .addOption(new Option('--resource-parent <parent>', 'accepted for az compatibility; ignored').hideHelp());

export function monitorCommands(program: Command): void {
  const monitor = program.command('monitor').description('Monitoring: autoscale settings (az monitor)');
  const autoscale = monitor.command('autoscale').description('Autoscale settings of deployments (az monitor autoscale)');
  const name = () => new Option('-n, --name <name>', 'autoscale setting name');
  const autoscaleName = (hidden: boolean) => {
    const opt = new Option('--autoscale-name <name>', 'autoscale setting name');
    return hidden ? opt.hideHelp() : opt;
  };

  ignored(countOptions(common(autoscale.command('create').description('Create an autoscale setting for a deployment'))))
    .addOption(name().makeOptionMandatory())
    .requiredOption('--resource <id>', "the deployment's id: 'online-deployment show --query id'")
    .addOption(new Option('--disabled <bool>', 'create it disabled').choices(['true', 'false']))
    .action(async (o: Named & { resource: string; minCount?: string; maxCount?: string; count?: string; disabled?: string }) => {
      emit(await serverClient(o).createAutoscale({ name: settingName(o), resource: o.resource, ...counts(o), ...(o.disabled === 'true' ? { disabled: true } : {}) }), o);
    });

  common(autoscale.command('show').description('Show an autoscale setting'))
    .addOption(name())
    .addOption(autoscaleName(true))
    .action(async (o: Named) => emit(await serverClient(o).getAutoscale(settingName(o)), o));

  common(autoscale.command('list').description('List autoscale settings'))
    .action(async (o: CommonOptions) => emit(await serverClient(o).listAutoscale(), o));

  countOptions(common(autoscale.command('update').description("Update an autoscale setting: enabled, or the default profile's counts")))
    .addOption(name())
    .addOption(autoscaleName(false))
    .option('--enabled <bool>', 'true or false: a disabled setting is kept but not acted on')
    .action(async (o: Named & { enabled?: string; minCount?: string; maxCount?: string; count?: string }) => {
      emit(await serverClient(o).updateAutoscale(settingName(o), { ...(o.enabled !== undefined ? { enabled: o.enabled } : {}), ...counts(o) }), o);
    });

  common(autoscale.command('delete').description('Delete an autoscale setting (the deployment keeps its instance count)'))
    .addOption(name())
    .addOption(autoscaleName(true))
    .action(async (o: Named) => {
      await serverClient(o).deleteAutoscale(settingName(o));
    });

  common(autoscale.command('history').description("The autoscaler's decisions for a setting, oldest first (which rule, which value, from and to)"))
    .addOption(name())
    .addOption(autoscaleName(true))
    .option('--max-events <n>', 'only the newest n')
    .action(async (o: Named & { maxEvents?: string }) => {
      const limit = o.maxEvents !== undefined ? Number(o.maxEvents) : undefined;
      if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) throw errorOf('WholeNumberInvalid', { flag: '--max-events', min: 0, value: o.maxEvents! });
      emit(await serverClient(o).autoscaleHistory(settingName(o), limit), o);
    });

  // ---- rules
  const rule = autoscale.command('rule').description("An autoscale setting's scale rules (az monitor autoscale rule)");

  ignored(common(rule.command('create').description('Add a scale rule to a profile')))
    .addOption(autoscaleName(false).makeOptionMandatory())
    .requiredOption('--condition <condition>', '"<metric> <op> <threshold> <avg|min|max|total|count|last> <window>", e.g. "CpuUtilizationPercentage > 70 avg 5m"; the window in d/h/m, or seconds (30s, infergate only)')
    .requiredOption('--scale <words...>', 'out N | in N | to N | out N% | in N%')
    .option('--cooldown <minutes>', 'minutes to wait after a scale before the next (az default 5); also a duration such as 30s')
    .option('--resource <id>', "read the metric of another resource, e.g. the endpoint's id ('online-endpoint show --query properties.\"azureml.onlineendpointid\"')")
    .option('--timegrain <grain>', 'statistic and grain the metric is sampled at, e.g. "avg 1m" (the default)')
    .option('--profile-name <name>', 'the profile to add it to (default: default)')
    .action(async (o: Named & { condition: string; scale: string[]; cooldown?: string; resource?: string; timegrain?: string; profileName?: string }) => {
      const created = await serverClient(o).createAutoscaleRule(settingName(o, 'autoscale-name'), {
        condition: o.condition,
        scale: o.scale,
        ...(o.cooldown !== undefined ? { cooldown: o.cooldown } : {}),
        ...(o.resource !== undefined ? { resource: o.resource } : {}),
        ...(o.timegrain !== undefined ? { timegrain: o.timegrain } : {}),
        ...(o.profileName !== undefined ? { profile_name: o.profileName } : {}),
      });
      emit(created, o);
    });

  common(rule.command('list').description("A profile's rules, each with its index (for rule delete)"))
    .addOption(autoscaleName(false).makeOptionMandatory())
    .option('--profile-name <name>', 'the profile (default: default)')
    .action(async (o: Named & { profileName?: string }) => emit(await serverClient(o).listAutoscaleRules(settingName(o, 'autoscale-name'), o.profileName), o));

  common(rule.command('delete').description("Delete rules by their index in 'rule list' ('*' deletes all)"))
    .addOption(autoscaleName(false).makeOptionMandatory())
    .requiredOption('--index <index...>', "indexes as 'rule list' prints them, or '*'")
    .option('--profile-name <name>', 'the profile (default: default)')
    .action(async (o: Named & { index: string[]; profileName?: string }) => {
      const indexes = o.index.flatMap((i) => i.split(',')).filter(Boolean);
      await serverClient(o).deleteAutoscaleRules(settingName(o, 'autoscale-name'), indexes.length === 1 && indexes[0] === '*' ? '*' : indexes, o.profileName);
    });

  // ---- profiles
  const profile = autoscale.command('profile').description("An autoscale setting's profiles: recurring or fixed-date capacities (az monitor autoscale profile)");

  countOptions(common(profile.command('create').description('Add a recurring (--recurrence week sat sun) or fixed-date (--start/--end dates) profile')))
    .addOption(autoscaleName(false).makeOptionMandatory())
    .addOption(new Option('-n, --name <name>', 'profile name').makeOptionMandatory())
    .option('--recurrence <words...>', 'week and the days it applies, e.g. week sat sun')
    .option('--timezone <zone>', 'Windows name ("Pacific Standard Time") or IANA name (America/Los_Angeles); default UTC')
    .option('--start <when>', 'fixed-date profile: a date (2026-12-24 or 2026-12-24T08:00); recurring profile: the time it starts (hh:mm)')
    .option('--end <date>', 'fixed-date profile: the date it ends')
    .option('--copy-rules <profile>', "copy this profile's rules into the new one")
    .action(async (o: Named & { minCount?: string; maxCount?: string; count?: string; recurrence?: string[]; timezone?: string; start?: string; end?: string; copyRules?: string }) => {
      const created = await serverClient(o).createAutoscaleProfile(settingName(o, 'autoscale-name'), {
        name: o.name!,
        ...counts(o),
        ...(o.recurrence !== undefined ? { recurrence: o.recurrence } : {}),
        ...(o.timezone !== undefined ? { timezone: o.timezone } : {}),
        ...(o.start !== undefined ? { start: o.start } : {}),
        ...(o.end !== undefined ? { end: o.end } : {}),
        ...(o.copyRules !== undefined ? { copy_rules: o.copyRules } : {}),
      });
      emit(created, o);
    });

  common(profile.command('list').description("An autoscale setting's profiles"))
    .addOption(autoscaleName(false).makeOptionMandatory())
    .action(async (o: Named) => emit(await serverClient(o).listAutoscaleProfiles(settingName(o, 'autoscale-name')), o));

  common(profile.command('show').description('Show a profile'))
    .addOption(autoscaleName(false).makeOptionMandatory())
    .addOption(new Option('-n, --name <name>', 'profile name').makeOptionMandatory())
    .action(async (o: Named) => emit(await serverClient(o).getAutoscaleProfile(settingName(o, 'autoscale-name'), o.name!), o));

  common(profile.command('delete').description('Delete a profile (not the default one)'))
    .addOption(autoscaleName(false).makeOptionMandatory())
    .addOption(new Option('-n, --name <name>', 'profile name').makeOptionMandatory())
    .action(async (o: Named) => {
      await serverClient(o).deleteAutoscaleProfile(settingName(o, 'autoscale-name'), o.name!);
    });
}
