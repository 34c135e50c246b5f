using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AppendLog.Hosting;

/// <summary>Registers a <see cref="LogManager"/> with <see cref="IServiceCollection"/>.</summary>
public static class AppendLogServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="LogManager"/> whose options are bound from <paramref name="configuration"/>
    /// (every <see cref="LogManagerOptions"/> property; <c>LogDefaults:*</c> for the <see cref="LogOptions"/> of each
    /// log), then passed through <paramref name="configure"/>, then validated with
    /// <see cref="LogManagerOptions.Validate"/> when the manager is first resolved. When the options set no
    /// <see cref="LogOptions.LoggerFactory"/>, the container's <see cref="ILoggerFactory"/> is used. The manager is
    /// disposed with the service provider: every log is flushed and closed on shutdown.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">A configuration section, or null to start from the defaults.</param>
    /// <param name="configure">Returns the options to use from the bound ones (records: use <c>with</c>), or null.</param>
    /// <returns>The service collection, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is null.</exception>
    public static IServiceCollection AddAppendLog(
        this IServiceCollection services,
        IConfiguration? configuration = null,
        Func<LogManagerOptions, LogManagerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddSingleton(provider =>
        {
            var options = configuration?.Get<LogManagerOptions>() ?? new LogManagerOptions();
            if (configure is not null)
            {
                options = configure(options);
            }

            var loggerFactory = provider.GetService<ILoggerFactory>();
            if (loggerFactory is not null && options.LogDefaults?.LoggerFactory is null)
            {
                options = options with { LogDefaults = (options.LogDefaults ?? new LogOptions()) with { LoggerFactory = loggerFactory } };
            }

            options.Validate();
            return LogManager.Create(options);
        });
        return services;
    }
}
